"""Intake: polling the channels, receiving webhooks, turning stored messages into complaints."""
