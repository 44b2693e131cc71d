"""The desk: config, store, rules and channel adapters, shared by every stage and CLI verb."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import TYPE_CHECKING

import structlog

from lapakd import channels
from lapakd.config import SECTIONS, Config, Section, load_config, validate_section
from lapakd.errors import ConfigError, RulesError
from lapakd.learn.slot import ModelSlot, model_path
from lapakd.rules import RuleSet, rules_signature
from lapakd.rules.cache import load_rules_cached
from lapakd.store import Store

if TYPE_CHECKING:
    from lapakd.adapters.base import Adapter
    from lapakd.learn.predict import Model

log = structlog.get_logger("lapakd")

# Settings a running daemon cannot take on a reload (the store is open, the sockets are bound,
# the poll workers are started): a changed value is named in a warning and waits for a restart.
RESTART_KEYS = ("paths.data_dir", "webhook.listen", "metrics.listen")


class Desk:
    def __init__(self, config: Config, store: Store | None = None,
                 parent: Desk | None = None) -> None:
        self._config = config
        self.store = store or Store(config.data_dir)
        self._rules: RuleSet | None = None
        self._model_slot: ModelSlot | None = None
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

    @property
    def config(self) -> Config:
        """The config in force: a worker desk reads its parent's, so a reload reaches it."""
        return self._parent.config if self._parent is not None else self._config

    @config.setter
    def config(self, config: Config) -> None:
        self._config = config

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

    # -- the model: data_dir/model.npz, loaded when it appears or changes --------------------

    @property
    def model(self) -> Model | None:
        """The trained model (lapakd.learn), None while there is none; one stat per call."""
        if self._parent is not None:
            return self._parent.model
        if self._model_slot is None:
            self._model_slot = ModelSlot(model_path(self.config.data_dir))
        return self._model_slot.get()

    # -- config: lapakd.toml again on SIGHUP ----------------------------------------------------

    def reload_config(self) -> list[str]:
        """Read lapakd.toml again; returns the keys that changed ("public.export_minutes").

        What can change live takes effect (the stages read `desk.config` when they run; the
        adapters are made again); RESTART_KEYS and which channels are enabled keep their old
        value, named in a warning. A broken file is one error line and the old config stays."""
        if self._parent is not None:
            return self._parent.reload_config()
        old = self.config
        try:
            fresh = load_config(old.path)
        except ConfigError as exc:
            log.error("config.reload_failed", error=str(exc),
                      hint="fix the file; the running config stays in force")
            return []
        kept: list[str] = []
        for name in RESTART_KEYS:
            section, _, key = name.partition(".")
            before, after = getattr(old, section, None), getattr(fresh, section, None)
            if before is None or after is None or before.get(key) == after.get(key):
                continue
            kept.append(name)
            setattr(fresh, section, Section(section, {**after.as_dict(), key: before.get(key)}))
        for channel in sorted(set(old.channels) | set(fresh.channels)):
            was = old.channels.get(channel)
            now = fresh.channels.get(channel)
            if bool(was and was.enabled) == bool(now and now.enabled):
                continue
            kept.append(f"channels.{channel}.enabled")  # its poll worker starts with the daemon
            if was is None:
                fresh.channels.pop(channel)
            elif now is None:
                fresh.channels[channel] = was
            else:
                fresh.channels[channel] = Section(f"channels.{channel}",
                                                  {**now.as_dict(), "enabled": was.enabled})
        changed = _changed_keys(old, fresh)
        self.config = fresh
        self.__dict__.pop("desk_domain", None)
        if kept:
            log.warning("config.restart_needed", keys=kept,
                        hint="these keep their old value until `systemctl restart lapakd`")
        log.info("config.reloaded", changed=changed)  # names only: secrets never in the logs
        return changed

    # -- channels ---------------------------------------------------------------------------

    def adapter(self, channel: str) -> Adapter:
        """The adapter for a channel — also for a disabled one, to parse what it stored."""
        current = self._adapters.get(channel)
        if current is not None and current.config is not self.config:
            # lapakd.toml was reloaded: made again with the new settings (poll_seconds...).
            del self._adapters[channel]
            current.close()
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


def _changed_keys(old: Config, new: Config) -> list[str]:
    """ "section.key" of every value that differs between two configs (sorted)."""
    pairs = [(name, getattr(old, name, None), getattr(new, name, None)) for name in SECTIONS]
    pairs += [(f"channels.{name}", old.channels.get(name), new.channels.get(name))
              for name in sorted(set(old.channels) | set(new.channels))]
    changed = []
    for name, before, after in pairs:
        a = before.as_dict() if before is not None else {}
        b = after.as_dict() if after is not None else {}
        changed += [f"{name}.{key}" for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return sorted(changed)
