"""Limits that keep the work linear and the output bounded (one place to read them all)."""

_MAX_MIME_CONTAINERS = 40  # "boundary=" / "message/" declarations before we refuse MIME parsing
_MAX_PARTS = 500  # MIME parts inspected
_MAX_DEPTH = 40  # nesting guard for our own (recursive) tree walk and serializer
_MAX_HEADER_NAME = 200
_MAX_HEADER_VALUE = 32_768
_MAX_CONTENT_HEADER = 2_048  # Content-* headers feed email's quadratic parameter parser
_MAX_CONTENT_PARAMS = 32
_MAX_HEADERS_SCANNED = 2_000
_MAX_HEADER_MAP = 200
_MAX_HEADER_MAP_VALUE = 4_096
_MAX_DECODE_CHARS = 16_384  # a header value is cut to this before RFC 2047 decoding
_MAX_ADDRESS_CHARS = 65_536
_MAX_ADDRESSES = 500
_MAX_DISPLAY_NAME = 256
_MAX_REFERENCES = 100
_MAX_SUBJECT = 1_000
_MAX_NOTES = 50
_HTML_MIN_INPUT = 1_000_000  # characters of HTML parsed at least (scaled up with max_chars)
_HEADER_BLOCK_CAP = 1_048_576
_DSN_TEXT_CAP = 65_536
