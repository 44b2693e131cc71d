"""The desk: config, store, rules and channel adapters, shared by every stage and CLI verb."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

import structlog

from lapakd import channels
from lapakd.config import Config, Section, load_config, validate_section
from lapakd.errors import RulesError
from lapakd.rules import RuleSet, rules_signature
from lapakd.rules.cache import load_rules_cached
from lapakd.store import Store

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter

log = structlog.get_logger("lapakd")


class Desk:
    def __init__(self, config: Config, store: Store | None = None,
                 parent: Desk | None = None) -> None:
        self.config = config
        self.store = store or Store(config.data_dir)
        self._rules: RuleSet | None = None
        self._adapters: dict[str, Adapter] = {}
        self._parent = parent
        # Set by SIGTERM: finish the item in hand, then stop. Shared with worker desks.
        self.stopping = parent.stopping if parent else threading.Event()
        # Processing and routing read rows, then change them: one thread at a time runs them
        # (the daemon's jobs and a poll worker's burst), or a message would count twice.
        self.pipeline_lock = parent.pipeline_lock if parent else threading.RLock()

    def worker(self) -> Desk:
        """A desk for another thread of this runner (a channel's poll worker): its own store
        connection and adapters (an SQLite connection serves one thread at a time); the stop
        event, the rules and the pipeline lock stay shared."""
        store = Store(self.config.data_dir)
        if self.store._lock_fd is not None:
            # The same open runner lock (flock: released only when every copy is closed), so
            # a burst's sender process started from the worker holds it too.
            store._lock_fd = os.dup(self.store._lock_fd)
        return Desk(self.config, store, parent=self)

    @classmethod
    def open(cls, config_path: str | None = None) -> Desk:
        return cls(load_config(config_path))

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()
        self.store.close()

    # -- rules: compiled once, swapped whole ------------------------------------------------

    @property
    def rules(self) -> RuleSet:
        if self._parent is not None:
            return self._parent.rules
        if self._rules is None:
            self._rules = self._load_rules()
        return self._rules

    def _load_rules(self) -> RuleSet:
        return load_rules_cached(
            self.config.rules_dir, self.config.data_dir, display_root=self.config.path.parent
        )

    def reload_rules_if_changed(self) -> bool:
        """Reload when the files changed; a broken edit keeps the last good rules in force."""
        if self._parent is not None:
            return self._parent.reload_rules_if_changed()
        current = self._rules
        signature = rules_signature(self.config.rules_dir)
        if current is not None and current.signature == signature:
            return False
        try:
            fresh = self._load_rules()
        except RulesError as exc:
            if current is None:
                raise
            if getattr(self, "_bad_signature", None) != signature:
                self._bad_signature = signature
                log.error(
                    "rules.reload_failed", problems=exc.problems,
                    hint="fix the files; the last good rules stay in force",
                )
            return False
        self._rules = fresh
        if current is not None:
            log.info("rules.reloaded", rules=len(fresh.rules), agencies=len(fresh.agencies))
        return True

    # -- channels ---------------------------------------------------------------------------

    def adapter(self, channel: str) -> Adapter:
        """The adapter for a channel — also for a disabled one, to parse what it stored."""
        if channel not in self._adapters:
            section = self.config.channels.get(channel)
            if section is None:
                spec = channels.config_schema(channel)
                section = Section(
                    f"channels.{channel}",
                    {"enabled": False, **validate_section(
                        f"channels.{channel}", {}, spec, self.config.path, self.config.path.parent
                    )},
                )
            self._adapters[channel] = channels.adapter_class(channel)(self.config, section)
        return self._adapters[channel]

    @cached_property
    def desk_domain(self) -> str:
        return self.config.desk.email.rpartition("@")[2] or "lapakd.invalid"
