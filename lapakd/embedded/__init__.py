"""Real servers embedded for the demo and the tests: the SMTP sink and the X/Graph API replicas."""
