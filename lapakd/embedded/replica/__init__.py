"""Local replicas of the social platforms' HTTP APIs, for tests and `lapakd demo`.

Each replica is a real HTTP server on loopback that speaks the same endpoints, JSON shapes,
paging, error bodies and rate-limit headers as the platform, so the real client libraries talk
to it unchanged (only the base URL differs).
"""
