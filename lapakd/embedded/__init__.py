"""Real servers embedded for the demo and the tests: the IMAP server (demo), the SMTP sink and the
X/Graph API replicas."""
