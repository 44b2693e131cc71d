"""Mail: parsing what comes in, composing what goes out, and SMTP."""
