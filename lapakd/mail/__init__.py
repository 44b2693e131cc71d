"""Mail: parsing what comes in, and the text every outgoing mail is made of (templates, dates,
header-safe text, Message-IDs); `lapakd.delivery` composes and sends."""
