"""Every API call in the operator's code is covered by a rule in ``mlops_operator.rbac``.

The operator's own calls all go through ``k8s.Kube``; kopf's come from the handlers'
decorators. Both are read from the source (AST), so a new call or handler without a rule
fails here; ``tests/integration/packaging/test_chart_render.py`` then checks that the chart
grants exactly what ``rbac.py`` lists.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from mlops_operator import rbac
from mlops_operator.api.base import GROUP, VERSION
from mlops_operator.kube import client as k8s

PACKAGE = Path(rbac.__file__).resolve().parent
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "runtime" not in p.relative_to(PACKAGE).parts)

KUBE_VERBS: dict[str, str] = {
    "get": "get",
    "list": "list",
    "create": "create",
    "patch": "patch",
    "patch_status": "patch",
    "delete": "delete",
}
"""``Kube`` methods that take a resource → the RBAC verb of the request they send."""

KOPF_CHANGE_HANDLERS = {"create", "update", "resume", "delete", "field", "timer", "daemon"}
"""Handlers whose state kopf keeps on the object (annotations, finalizer): list, watch, patch."""

RESOURCES = {name: value for name, value in vars(k8s).items() if isinstance(value, k8s.Resource)}
NAMES = {"GROUP": GROUP, "VERSION": VERSION}

Grant = tuple[str, str, str]


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _resource(node: ast.expr) -> k8s.Resource | None:
    """``k8s.PODS`` (or ``PODS`` inside kube/client.py) → the resource it names."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        if node.value.id == "k8s":
            return RESOURCES.get(node.attr)
    if isinstance(node, ast.Name):
        return RESOURCES.get(node.id)
    return None


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _on_cache(call: ast.Call) -> bool:
    """``ctx.cache.get(k8s.X, …)`` and the like read or feed watch state, not the API."""
    func = call.func
    return isinstance(func, ast.Attribute) and ast.unparse(func.value).split(".")[-1] == "cache"


def _args(call: ast.Call) -> list[ast.expr]:
    return [*call.args, *(k.value for k in call.keywords)]


def _subresource(call: ast.Call, callee: str) -> str:
    if callee == "patch_status":
        return "/status"
    for keyword in call.keywords:
        value = keyword.value
        if keyword.arg == "subresource" and isinstance(value, ast.Constant):
            return f"/{value.value}" if isinstance(value.value, str) and value.value else ""
    return ""


def _resource_params(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Parameters annotated ``k8s.Resource`` / ``Resource``."""
    found = set()
    for arg in [*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs]:
        text = ast.unparse(arg.annotation) if arg.annotation else ""
        if text in {"k8s.Resource", "Resource"}:
            found.add(arg.arg)
    return found


def _helpers(modules: list[ast.Module]) -> dict[str, set[tuple[str, str]]]:
    """Functions that take a resource and call the API with it → ``{(verb, subresource)}``,
    to a fixed point (helpers may call helpers). ``Kube``'s own methods are the base case."""
    functions = [
        node
        for module in modules
        for node in ast.walk(module)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name not in KUBE_VERBS
        and _resource_params(node)
    ]
    # Each one known, even if it only reads watch state.
    helpers: dict[str, set[tuple[str, str]]] = defaultdict(set, {f.name: set() for f in functions})
    changed = True
    while changed:
        changed = False
        for func in functions:
            params = _resource_params(func)
            for call in (n for n in ast.walk(func) if isinstance(n, ast.Call)):
                callee = _callee(call)
                if _on_cache(call):
                    continue  # watch state: no request
                if not any(isinstance(a, ast.Name) and a.id in params for a in _args(call)):
                    continue
                if callee in KUBE_VERBS:
                    new = {(KUBE_VERBS[callee], _subresource(call, callee))}
                else:
                    new = helpers.get(callee or "", set())
                if not new <= helpers[func.name]:
                    helpers[func.name] |= new
                    changed = True
    return dict(helpers)


def _code_grants(sources: list[Path] = SOURCES) -> tuple[set[Grant], list[str]]:
    """What the code asks of the API server, and the calls this test could not understand."""
    modules = [_parse(path) for path in sources]
    helpers = _helpers(modules)
    grants: set[Grant] = set()
    unknown: list[str] = []
    for path, module in zip(sources, modules, strict=True):
        for call in (n for n in ast.walk(module) if isinstance(n, ast.Call)):
            callee = _callee(call) or ""
            if _on_cache(call):
                continue  # watch state: no request
            for arg in _args(call):
                resource = _resource(arg)
                if resource is None:
                    continue
                if callee in KUBE_VERBS:
                    verbs = {(KUBE_VERBS[callee], _subresource(call, callee))}
                elif callee in helpers:
                    verbs = helpers[callee]
                else:
                    unknown.append(f"{path.name}:{call.lineno} {ast.unparse(call)[:80]}")
                    continue
                for verb, sub in verbs:
                    grants.add((resource.group, resource.plural + sub, verb))
            if callee == "event" and ast.unparse(call.func) in {"kopf.event", "event"}:
                grants.add(("", "events", "create"))
            if callee == "request" and path.name != "client.py":
                unknown.append(f"{path.name}:{call.lineno} raw request: use a Kube method")
    return grants, unknown


def _decorator_grants() -> set[Grant]:
    """What kopf needs for every handler registered with ``@kopf.on.*``/``@kopf.timer``/
    ``@kopf.daemon``."""
    grants: set[Grant] = set()
    for path in SOURCES:
        for node in ast.walk(_parse(path)):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if not isinstance(decorator, ast.Call):
                    continue
                name = ast.unparse(decorator.func)
                if not name.startswith(("kopf.on.", "kopf.timer", "kopf.daemon", "kopf.index")):
                    continue
                kind = name.rsplit(".", 1)[-1]
                if kind in {"startup", "cleanup", "login", "probe"}:
                    continue
                words = [
                    NAMES[a.id] if isinstance(a, ast.Name) else ast.literal_eval(a)
                    for a in decorator.args
                ]
                assert len(words) == 3, f"{path.name}:{node.name}: name group, version, plural"
                group, _, plural = words
                verbs = {"list", "watch"}
                if kind in KOPF_CHANGE_HANDLERS:
                    verbs.add("patch")
                grants |= {(group, plural, verb) for verb in verbs}
    return grants


def test_the_scan_sees_the_operators_calls() -> None:
    """Guard against a scan that silently finds nothing."""
    grants, _ = _code_grants()
    assert ("apps", "deployments", "create") in grants  # through the apply_child helper
    assert (GROUP, "trainingjobs/status", "patch") in grants  # through write_status
    assert (GROUP, "modelversions", "patch") in grants  # through write_annotations
    assert ("", "secrets", "get") in grants  # Kube.read_secret
    assert ("", "events", "create") in grants  # Events posted by the operator
    assert (GROUP, "inferenceservices", "watch") in _decorator_grants()  # watch state


def test_a_new_call_through_a_new_helper_is_seen(tmp_path: Path) -> None:
    extra = tmp_path / "extra.py"
    extra.write_text(
        "async def _drop(kube: k8s.Kube, res: k8s.Resource, ns: str, name: str) -> None:\n"
        "    await kube.delete(res, ns, name)\n"
        "async def cleanup(ctx: Context) -> None:\n"
        "    await _drop(ctx.kube, k8s.SERVICES, 'ns', 'name')\n"
        "    await mystery(k8s.PODS)\n"
    )
    grants, unknown = _code_grants([*SOURCES, extra])
    assert ("", "services", "delete") in grants
    assert ("", "services", "delete") not in rbac.grants(rbac.RULES)
    assert [u.split(" ", 1)[1] for u in unknown] == ["mystery(k8s.PODS)"]


def test_every_api_call_in_the_code_is_understood() -> None:
    _, unknown = _code_grants()
    assert not unknown, (
        "calls with a k8s resource whose verbs this test cannot tell; annotate the helper's "
        "parameter as `k8s.Resource` or call a Kube method directly:\n" + "\n".join(unknown)
    )


def test_kube_methods_that_take_a_resource_are_all_known() -> None:
    kube = next(
        node
        for node in ast.walk(_parse(PACKAGE / "kube" / "client.py"))
        if isinstance(node, ast.ClassDef) and node.name == "Kube"
    )
    methods = {
        node.name
        for node in kube.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _resource_params(node)
    }
    assert methods == set(KUBE_VERBS)


@pytest.mark.parametrize("clusterwide", [True, False], ids=["clusterwide", "namespaced"])
def test_every_call_and_handler_has_an_rbac_rule(clusterwide: bool) -> None:
    grants, _ = _code_grants()
    needed = grants | _decorator_grants()
    granted = rbac.grants(rbac.rules(clusterwide=clusterwide, peering=False))
    missing = sorted(needed - granted)
    assert not missing, f"add these to mlops_operator/rbac.py and the chart: {missing}"


def test_rbac_grants_nothing_the_code_does_not_use() -> None:
    """Least privilege: every namespaced rule is used by a call or a handler (kopf's own
    cluster-level needs, events and peering are not visible in our code)."""
    grants, _ = _code_grants()
    used = grants | _decorator_grants()
    kopf_only = {"customresourcedefinitions", "namespaces", "kopfpeerings", "clusterkopfpeerings"}
    listed = {
        grant
        for grant in rbac.grants(rbac.RULES)
        if grant[1] not in kopf_only and grant[1] != "events"
    }
    assert sorted(listed - used) == []


def test_peering_adds_the_peering_resource_of_the_mode() -> None:
    def resources(clusterwide: bool, peering: bool) -> set[str]:
        return {r.resource for r in rbac.rules(clusterwide=clusterwide, peering=peering)}

    assert resources(True, True) - resources(True, False) == {"clusterkopfpeerings"}
    assert resources(False, True) - resources(False, False) == {"kopfpeerings"}
    assert "namespaces" in resources(False, False)
    assert "namespaces" not in resources(True, False)
