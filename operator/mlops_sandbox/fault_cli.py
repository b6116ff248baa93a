"""``mlops-sandbox fault add|list|clear|requests``: faults in a running sandbox, through its
admin endpoint (see :mod:`mlops_sandbox.admin` and docs/faults.md)."""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def duration(text: str) -> float:
    """Seconds from ``500ms``, ``10s``, ``2m``, ``1h`` or a plain number of seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 10s, 500ms, 2m)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``fault`` subcommands to ``parser``."""
    parser.add_argument(
        "--state-dir",
        type=pathlib.Path,
        default=pathlib.Path(".sandbox"),
        help="the running sandbox's state directory (its kubeconfig names the API)",
    )
    parser.add_argument("--api-url", help="the sandbox API's URL (default: from --state-dir)")
    sub = parser.add_subparsers(dest="fault_command", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="add a fault rule (the first matching rule answers)")
    add.add_argument("--s3", action="store_true", help="a fault of the S3 server, not the API")
    add.add_argument(
        "--action",
        default=None,
        help="API: error (default), timeout, close, lost, drop, stall, expire; "
        "S3: slowdown (default), latency, refuse",
    )
    add.add_argument("--status", type=int, help="the error's HTTP status (default 500)")
    add.add_argument("--verb", help="get, list, watch, create, update, patch, delete")
    add.add_argument("--resource", help="e.g. deployments, inferenceservices/status")
    add.add_argument("--name", help="the object's name")
    add.add_argument("--namespace", help="the object's namespace")
    add.add_argument("--client", help="the User-Agent's product name, e.g. mlops-operator")
    add.add_argument("--for", dest="seconds", type=duration, help="live for this long (e.g. 10s)")
    add.add_argument("--times", type=int, help="answer at most this many requests")
    add.add_argument(
        "--after",
        type=int,
        default=0,
        help="start after this many trigger requests (--after-verb/--after-resource)",
    )
    add.add_argument("--after-verb", help="the trigger's verb (default: the rule's matchers)")
    add.add_argument("--after-resource", help="the trigger's resource")
    add.add_argument("--probability", type=float, help="answer a matching request this often")
    add.add_argument("--seed", type=int, help="the seed of the probability's draws")
    add.add_argument("--retry-after", type=duration, help="sent as Retry-After with an error")
    add.add_argument("--hold", type=duration, help="how long a timeout/stall holds, a drop runs")
    add.add_argument("--latency", type=duration, help="S3 latency to add (default 1s)")
    add.set_defaults(fault_func=_add)
    listing = sub.add_parser("list", help="the rules and how often each answered")
    listing.set_defaults(fault_func=_list)
    clear = sub.add_parser("clear", help="remove every rule (or one: clear ID)")
    clear.add_argument("id", nargs="?", type=int, help="the rule to remove")
    clear.set_defaults(fault_func=_clear)
    requests = sub.add_parser("requests", help="the API's request log, oldest first")
    for key in ("client", "verb", "resource", "namespace", "name"):
        requests.add_argument(f"--{key}", help=f"only requests with this {key}")
    requests.set_defaults(fault_func=_requests)


def fault_command(args: argparse.Namespace) -> int:
    """Run one ``mlops-sandbox fault`` action; 1 with a message when it cannot."""
    try:
        base = args.api_url or _api_url(args.state_dir)
        return int(args.fault_func(args, base.rstrip("/") + "/sandbox"))
    except _Failed as exc:
        print(f"mlops-sandbox fault: {exc}", file=sys.stderr)
        return 1


class _Failed(Exception):
    pass


def _api_url(state_dir: pathlib.Path) -> str:
    kubeconfig = state_dir / "kubeconfig"
    try:
        config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
        server: str = config["clusters"][0]["cluster"]["server"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise _Failed(
            f"no running sandbox found in {state_dir} ({exc}); start one with "
            "`mlops-sandbox up`, or pass --state-dir or --api-url"
        ) from None
    return server


def _send(method: str, url: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("message", "")
        except ValueError:
            message = ""
        raise _Failed(f"HTTP {exc.code}: {message or exc.reason}") from None
    except OSError as exc:
        raise _Failed(f"cannot reach the sandbox at {url}: {exc}") from None


def _add(args: argparse.Namespace, base: str) -> int:
    body: dict[str, Any] = {"target": "s3" if args.s3 else "api"}
    api_only = (
        "status",
        "verb",
        "resource",
        "name",
        "namespace",
        "client",
        "after_verb",
        "after_resource",
        "probability",
        "seed",
        "retry_after",
        "hold",
    )
    fields = ("action", "seconds", "times") + (("latency",) if args.s3 else api_only)
    for field in fields:
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if args.s3:
        given = [f"--{f.replace('_', '-')}" for f in api_only if getattr(args, f) is not None]
        if given or args.after:
            raise _Failed(f"{', '.join(given) or '--after'} apply to API faults, not --s3")
    else:
        if args.latency is not None:
            raise _Failed("--latency applies to S3 faults (--s3)")
        if args.after:
            body["after"] = args.after
        # From the command line a rule lasts its window, or until cleared, unless counted.
        if args.times is None:
            body["times"] = None
    if args.s3 and args.times is None and args.seconds is None and args.action != "refuse":
        raise _Failed("an S3 fault needs --for or --times")
    added = _send("POST", base + "/faults", body)
    print(f"added fault {added['id']}: {_describe(added)}")
    return 0


def _describe(rule: dict[str, Any]) -> str:
    skip = {"id", "hits", "live", "target", "triggered"}
    parts = [f"{k}={v}" for k, v in rule.items() if k not in skip and v not in (None, 0, "")]
    return " ".join(parts)


def _list(args: argparse.Namespace, base: str) -> int:
    listing = _send("GET", base + "/faults")
    rows = [("api", r) for r in listing["api"]] + [("s3", r) for r in listing["s3"]]
    if not rows:
        print("no faults")
        return 0
    print(f"{'ID':>3} {'TARGET':6} {'LIVE':5} {'HITS':>5}  RULE")
    for target, rule in rows:
        live = "yes" if rule["live"] else "no"
        print(f"{rule['id']:>3} {target:6} {live:5} {rule['hits']:>5}  {_describe(rule)}")
    return 0


def _clear(args: argparse.Namespace, base: str) -> int:
    if args.id is not None:
        _send("DELETE", f"{base}/faults/{args.id}")
        print(f"removed fault {args.id}")
    else:
        _send("DELETE", base + "/faults")
        print("removed every fault")
    return 0


def _requests(args: argparse.Namespace, base: str) -> int:
    query = {
        key: getattr(args, key)
        for key in ("client", "verb", "resource", "namespace", "name")
        if getattr(args, key) is not None
    }
    url = base + "/requests"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    for record in _send("GET", url)["requests"]:
        where = "/".join(p for p in (record["namespace"], record["name"]) if p)
        fault = f" (fault {record['fault']})" if record["fault"] else ""
        print(
            f"{record['at']:.3f} {record['client']} {record['verb']} {record['resource']} "
            f"{where} {record['status']}{fault}"
        )
    return 0
