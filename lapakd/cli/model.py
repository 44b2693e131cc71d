"""The model's verbs: `model train`, `model show`, and `rules audit` (where the rules and the
model disagree). Registered in `cli.VERB_MODULES`; the model itself is lapakd/learn/."""

from __future__ import annotations

import argparse
import json
from typing import Any

from lapakd.cli import _print_json, command, open_desk
from lapakd.errors import LapakdError


def add_verbs(sub: Any, common: argparse.ArgumentParser, actor: argparse.ArgumentParser) -> None:
    model = sub.add_parser("model", help="the routing model learnt from the desk's decisions")
    msub = model.add_subparsers(dest="model_verb", metavar="train|show", required=True)
    msub.add_parser("train", parents=[common],
                    help="train it now on the examples and the desk's decisions")
    msub.add_parser("show", parents=[common], help="its date, size, labels and held-out figures")


@command("model train")
def cmd_model_train(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.learn.job import NotEnoughLabels, train_in_subprocess

    cfg = load_config(args.config)
    try:
        summary = train_in_subprocess(cfg.path)
    except NotEnoughLabels as exc:
        raise LapakdError(f"{exc}") from None
    if args.json:
        _print_json(summary)
    else:
        print(f"trained on {summary['labels']} labels ({summary['desk_labels']} from the desk's "
              f"decisions) in {summary['seconds']} s ({summary['cpu_seconds']} s CPU): "
              f"{summary['path']}, "
              f"{summary['size_bytes'] / 1e6:.1f} MB")
        print(_held_out_lines(summary["held_out"], cfg.routing.auto_forward_confidence))
    return 0


@command("model show")
def cmd_model_show(args: argparse.Namespace) -> int:
    from lapakd.config import load_config
    from lapakd.learn.predict import Model, ModelFileError
    from lapakd.learn.slot import model_path

    cfg = load_config(args.config)
    path = model_path(cfg.data_dir)
    if not path.exists():
        raise LapakdError(f"{path}: no model yet (run `lapakd model train`; the daemon trains "
                          "one every [routing] retrain_hours)")
    try:
        model = Model(path)
    except ModelFileError as exc:
        raise LapakdError(f"{exc}; run `lapakd model train`") from None
    meta = model.meta | {"path": str(path), "size_bytes": path.stat().st_size,
                         "auto_forward_confidence": cfg.routing.auto_forward_confidence}
    if args.json:
        _print_json(meta)
        return 0
    print(f"model: {path}")
    print(f"trained: {meta['trained_at']} in {meta.get('seconds', '?')} s "
          f"({meta.get('cpu_seconds', '?')} s CPU), "
          f"{meta['size_bytes'] / 1e6:.1f} MB")
    print(f"labels: {meta['labels']} ({meta['example_labels']} examples, "
          f"{meta['desk_labels']} from the desk's decisions); {meta['classes']} classes "
          f"({meta['agencies']} agencies), {meta['features']} features")
    print(_held_out_lines(meta["held_out"], cfg.routing.auto_forward_confidence))
    return 0


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _held_out_lines(h: dict[str, Any], configured: float) -> str:
    if not h.get("texts"):
        return "held-out: no example texts held out"
    lines = [
        f"held-out: {h['texts']} example texts; accuracy {_percent(h['accuracy'])} "
        f"(top 3: {_percent(h['top3'])})",
        "  threshold  forwarded  coverage  precision",
    ]
    lines += [
        f"  {t['threshold']:<9.2f}  {t['forwarded']:<9}  {_percent(t['coverage']):<8}  "
        f"{_percent(t['precision'])}"
        for t in h["thresholds"]
    ]
    r = h["rules"]
    lines.append(f"  rules on the same texts: forwarded {r['forwarded']}, coverage "
                 f"{_percent(r['coverage'])}, precision {_percent(r['precision'])}")
    lines.append(f"auto_forward_confidence: {configured} configured; {h['suggested_threshold']} "
                 "is the lowest threshold where the model is as precise as the rules")
    return "\n".join(lines)


@command("rules audit")
def cmd_rules_audit(args: argparse.Namespace) -> int:
    """Complaints a rule routed where the model strongly preferred another agency."""
    with open_desk(args) as desk:
        rows = desk.store.all(
            "SELECT e.at, c.ticket, c.status, e.data FROM events e"
            " JOIN complaints c ON c.id = e.complaint_id WHERE e.type = 'routed'"
            " AND json_extract(e.data, '$.model.disagrees') IS NOT NULL ORDER BY e.id")
    cases = []
    for row in rows:
        data = json.loads(row["data"])
        other = data["model"]["disagrees"]
        cases.append({
            "ticket": row["ticket"], "at": row["at"], "status": row["status"],
            "rule": data.get("rule"), "where": (data.get("hits") or [{}])[0].get("where"),
            "agencies": data.get("agencies") or [], "model_agency": other["agency"],
            "probability": other["probability"],
        })
    if args.json:
        _print_json(cases)
        return 0
    for c in cases:
        print(f"{c['ticket']}  rule {c['rule']} ({c['where'] or '-'}) → "
              f"{', '.join(c['agencies'])}  · model: {c['model_agency']} "
              f"{c['probability']:.0%}  [{c['status']}]")
    print(f"{len(cases)} complaint(s) where the model disagrees with the rule "
          "(fix the rule, or `lapakd assign` the right agency so the model learns it)")
    return 0
