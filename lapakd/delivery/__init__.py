"""Delivery: emptying the outbox — claim the due rows, compose the mails, send them on SMTP or
through the channel's adapter, mark them; the burst's sender process."""
