"""Validation of built-in objects' fields, worded as kube-apiserver words it.

The API server checks a built-in object twice. Decoding the JSON body into Go types fails on a
value of the wrong type or a resource quantity that does not parse (:func:`decode_error`: the
caller answers 400 BadRequest, or 422 on ``patch`` for a patch). Validation then checks the
decoded fields (:func:`validate`: field errors, answered 422 Invalid).

Covered, for the kinds in :data:`NAME_RULES` (custom resources go through
:mod:`mlops_sandbox._schema` instead):

- ``metadata``: ``name`` and ``generateName`` (DNS-1123 subdomain; DNS-1123 label for
  Namespaces; DNS-1035 label for Services), label keys and values, annotation keys and their
  total size;
- pod templates (Jobs, Deployments, ReplicaSets) and Pods: template labels and annotations,
  ``containers`` and ``initContainers``: ``name`` (DNS-1123 label, unique), ``ports``
  (numbers 1..65535, IANA service names, protocols), ``env[].name``, and
  ``resources.requests/limits`` (resource names, quantities: non-negative, integers for
  extended resources, requests within limits);
- selectors: Job/Deployment/ReplicaSet ``spec.selector`` (label keys, values, operators), and
  for Deployments and ReplicaSets the template labels must match a given selector;
- Services: ``spec.selector`` labels, ``spec.ports`` (``name``, ``port``, ``targetPort``,
  ``protocol``).

- Jobs' ``podFailurePolicy``: only with ``restartPolicy: Never``, rule actions, exactly one of
  ``onExitCodes`` and ``onPodConditions``, exit-code operators, container names and values.

Not covered: required fields (a container's ``image``, a Deployment's ``selector``, a Job's
``restartPolicy``…), immutable fields on update, volumes, probes, and every other field.
Environment variable names follow the strict rule (``[-._a-zA-Z][-._a-zA-Z0-9]*``) of API
servers up to 1.31; from 1.32 the RelaxedEnvironmentVariableValidation gate (on by default)
accepts any printable ASCII but ``=``, so the sandbox rejects some names a newer cluster takes.
Go renders a bad value of a struct type as its Go syntax; here such values (quantities in
``must be an integer``) are rendered as quoted strings.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mlops_sandbox._schema import FieldError

# --- resource quantities (k8s.io/apimachinery/pkg/api/resource) -----------------------------

QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
QUANTITY_NUMERIC_ERROR = "unable to parse numeric part of quantity"
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES |= {"P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_SUFFIX_OF_DECIMAL_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_SUFFIX_OF_BINARY_EXPONENT = {exp: suffix for suffix, exp in _BINARY_SUFFIXES.items()} | {0: ""}
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_NANO = decimal.Decimal("1e-9")
_MAX_INT64 = decimal.Decimal(2**63 - 1)
# Exact arithmetic for any quantity a person writes (exponents run to int32 in Go).
_CONTEXT = decimal.Context(prec=1000, Emax=10**10, Emin=-(10**10))


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; ``str()`` is the API server's message."""


class Quantity:
    """A parsed ``resource.Quantity``: its exact value and the format it prints in."""

    def __init__(self, value: decimal.Decimal, fmt: str) -> None:
        self.value = value
        """The amount, rounded up to a multiple of 1e-9 as the API server stores it."""
        self.format = fmt
        """``DecimalSI``, ``BinarySI`` or ``DecimalExponent``, chosen by the suffix."""

    def __str__(self) -> str:
        """The canonical form, as ``Quantity.String()`` renders it (``0.5`` → ``500m``)."""
        value = self.value
        if value == 0:
            return "0"
        fmt = self.format
        if fmt == "BinarySI":
            if -1024 < value < 1024 or value != value.to_integral_value():
                fmt = "DecimalSI"
            else:
                amount, power = int(value), 0
                while amount % 1024 == 0 and power < 60:
                    amount //= 1024
                    power += 10
                return f"{amount}{_SUFFIX_OF_BINARY_EXPONENT[power]}"
        sign, digits, exponent = value.normalize(_CONTEXT).as_tuple()
        assert isinstance(exponent, int)  # finite by construction
        mantissa = int("".join(map(str, digits)))
        shift = exponent % 3  # down to a multiple of 3, as Go's AsCanonicalBytes does
        mantissa, exponent = mantissa * 10**shift, exponent - shift
        if fmt == "DecimalSI" and exponent > 18:
            mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
        number = f"{'-' if sign else ''}{mantissa}"
        if fmt == "DecimalExponent":
            return number if exponent == 0 else f"{number}e{exponent}"
        return number + _SUFFIX_OF_DECIMAL_EXPONENT[exponent]


def parse_quantity(text: str) -> Quantity:
    """Parse like ``resource.ParseQuantity``; raises :class:`QuantityError` with its message."""
    if not text:
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    if text == "0":
        return Quantity(decimal.Decimal(0), "DecimalSI")
    number, numerator, denominator, suffix = _split_quantity(text)
    if suffix in _DECIMAL_SUFFIXES:
        base, exponent, fmt = 10, _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    elif suffix in _BINARY_SUFFIXES:
        base, exponent, fmt = 2, _BINARY_SUFFIXES[suffix], "BinarySI"
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        if not -(2**63) <= int(suffix[1:]) < 2**63:
            raise QuantityError(QUANTITY_SUFFIX_ERROR)  # strconv.ParseInt fails
        # Go keeps the exponent in an int32, wrapping around.
        base, exponent, fmt = 10, (int(suffix[1:]) + 2**31) % 2**32 - 2**31, "DecimalExponent"
    else:
        raise QuantityError(QUANTITY_SUFFIX_ERROR)
    # Go takes a fast path for numbers that fit an int64 at nano precision; only its slow
    # path parses the numeric text itself and can fail on a bare "." (".e-10", ".5Gi"…).
    digits = len(numerator) + len(denominator)
    fast = (base == 10 and 18 - digits >= 0 and exponent - len(denominator) >= -9) or (
        base == 2 and not denominator and 15 - len(numerator) - int(exponent * 0.3) - 1 >= 0
    )
    if not fast and not re.search(r"[0-9]", number):
        raise QuantityError(QUANTITY_NUMERIC_ERROR)
    negative = text.startswith("-")
    amount = decimal.Decimal(f"{numerator}.{denominator or '0'}", context=_CONTEXT)
    if base == 10:
        amount = amount.scaleb(exponent, _CONTEXT)
    else:
        amount = _CONTEXT.multiply(amount, decimal.Decimal(2**exponent))
    exponent_of_amount = amount.as_tuple().exponent
    if isinstance(exponent_of_amount, int) and exponent_of_amount < -9:
        amount = amount.quantize(_NANO, rounding=decimal.ROUND_UP, context=_CONTEXT)
    if fmt == "BinarySI" and amount > _MAX_INT64:
        amount = _MAX_INT64
    return Quantity(-amount if negative else amount, fmt)


def _split_quantity(text: str) -> tuple[str, str, str, str]:
    """(numeric text, numerator digits, denominator digits, suffix) as Go's
    ``parseQuantityString`` reads them."""
    match = re.match(r"[-+]?0*([0-9]*)(?:\.([0-9]*))?", text)
    assert match is not None  # every part is optional
    number, numerator, denominator = match.group(0), match.group(1) or "0", match.group(2) or ""
    rest = text[match.end() :]
    suffix_match = re.match(r"[eEinumkKMGTP]*[-+]?[0-9]*", rest)
    assert suffix_match is not None
    if suffix_match.end() != len(rest):
        raise QuantityError(QUANTITY_FORMAT_ERROR)
    return number, numerator, denominator, rest


# --- names, labels, ports (k8s.io/apimachinery/pkg/util/validation) -------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-',"
    " and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-'"
    " or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an"
    " alphabetic character, and end with an alphanumeric character"
)
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an"
    " alphanumeric character"
)
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or"
    " '.', and must start and end with an alphanumeric character"
)
_ENV_VAR_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_VAR_NAME_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-',"
    " or '.', and must not start with a digit"
)
_TOTAL_ANNOTATION_SIZE = 256 * 1024


def _regex_error(message: str, fmt: str, *examples: str) -> str:
    """``RegexError``: the message, its examples and the regex."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len(length: int) -> str:
    return f"must be no more than {length} characters"


def is_dns1123_label(value: str) -> list[str]:
    """``IsDNS1123Label``: the messages for a bad value, none for a good one."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(_DNS1123_LABEL_FMT, value):
        if re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
            errors.append("must not contain dots")
        else:
            errors.append(
                _regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc")
            )
    return errors


def is_dns1123_subdomain(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: the messages for a bad value, none for a good one."""
    errors = [_max_len(253)] if len(value) > 253 else []
    if not re.fullmatch(_DNS1123_SUBDOMAIN_FMT, value):
        errors.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def is_dns1035_label(value: str) -> list[str]:
    """``IsDNS1035Label``: the messages for a bad value, none for a good one."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(_DNS1035_LABEL_FMT, value):
        errors.append(_regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errors


def is_qualified_name(value: str) -> list[str]:
    """``IsQualifiedName``: label keys, annotation keys, resource names."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        regex = _regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"
        )
        return [
            f"a qualified name {regex} with an optional DNS subdomain prefix and '/'"
            " (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += [f"prefix part {message}" for message in is_dns1123_subdomain(prefix)]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append(f"name part {_max_len(63)}")
    if not re.fullmatch(_QUALIFIED_NAME_FMT, name):
        regex = _regex_error(
            _QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"
        )
        errors.append(f"name part {regex}")
    return errors


def is_valid_label_value(value: str) -> list[str]:
    """``IsValidLabelValue``: at most 63 characters, alphanumeric at both ends."""
    errors = [_max_len(63)] if len(value) > 63 else []
    if not re.fullmatch(_LABEL_VALUE_FMT, value):
        errors.append(
            _regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errors


def is_valid_port_num(port: int) -> list[str]:
    """``IsValidPortNum``: 1..65535."""
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def is_valid_port_name(name: str) -> list[str]:
    """``IsValidPortName``: an IANA_SVC_NAME (at most 15 characters, a letter, no ``--``)."""
    errors = [_max_len(15)] if len(name) > 15 else []
    if not re.fullmatch("[-a-z0-9]+", name):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errors.append("must contain at least one letter (a-z)")
    if "--" in name:
        errors.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def is_env_var_name(name: str) -> list[str]:
    """``IsEnvVarName`` (the strict rule, see the module docstring)."""
    errors = []
    if not re.fullmatch(_ENV_VAR_NAME_FMT, name):
        errors.append(
            _regex_error(
                _ENV_VAR_NAME_MSG, _ENV_VAR_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"
            )
        )
    if name == ".":
        errors.append("must not be '.'")
    elif name == "..":
        errors.append("must not be '..'")
    elif name.startswith(".."):
        errors.append("must not start with '..'")
    return errors


def _name_as_prefix(name: str) -> str:
    # ``maskTrailingDash``: a generateName may end with '-', the suffix follows it.
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


NameRule = Callable[[str], list[str]]

BUILTINS: dict[tuple[str, str], tuple[str, NameRule]] = {
    ("", "namespaces"): ("Namespace", is_dns1123_label),
    ("", "services"): ("Service", is_dns1035_label),
    ("", "pods"): ("Pod", is_dns1123_subdomain),
    ("", "secrets"): ("Secret", is_dns1123_subdomain),
    ("", "configmaps"): ("ConfigMap", is_dns1123_subdomain),
    ("", "serviceaccounts"): ("ServiceAccount", is_dns1123_subdomain),
    ("", "events"): ("Event", is_dns1123_subdomain),
    ("batch", "jobs"): ("Job", is_dns1123_subdomain),
    ("apps", "deployments"): ("Deployment", is_dns1123_subdomain),
    ("apps", "replicasets"): ("ReplicaSet", is_dns1123_subdomain),
    ("events.k8s.io", "events"): ("Event", is_dns1123_subdomain),
    ("coordination.k8s.io", "leases"): ("Lease", is_dns1123_subdomain),
}
"""The built-in kinds validated here, by (group, plural): their kind and object-name rule."""

# Kinds with a pod template under spec.template and a label selector under spec.selector.
_WORKLOADS = frozenset({("batch", "jobs"), ("apps", "deployments"), ("apps", "replicasets")})
# Kinds whose template labels must match the selector (a Job's selector is generated).
_SELECTOR_MUST_MATCH = frozenset({("apps", "deployments"), ("apps", "replicasets")})
_PROTOCOLS = ("SCTP", "TCP", "UDP")


# --- rendering of field errors (k8s.io/apimachinery/pkg/util/validation/field) ---------------


def _quote(value: str) -> str:
    """Go's ``%q`` for the strings met here."""
    return json.dumps(value, ensure_ascii=False)


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    shown = _quote(value) if isinstance(value, str) else str(value)
    return FieldError("FieldValueInvalid", path, f"Invalid value: {shown}: {detail}")


def _required(path: str, detail: str = "") -> FieldError:
    return FieldError(
        "FieldValueRequired", path, "Required value" + (f": {detail}" if detail else "")
    )


def _duplicate(path: str, value: str) -> FieldError:
    return FieldError("FieldValueDuplicate", path, f"Duplicate value: {_quote(value)}")


def _not_supported(path: str, value: str, supported: tuple[str, ...]) -> FieldError:
    choices = ", ".join(_quote(choice) for choice in supported)
    detail = f"Unsupported value: {_quote(value)}: supported values: {choices}"
    return FieldError("FieldValueNotSupported", path, detail)


def _forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, f"Forbidden: {detail}")


def _go_string_map(labels: Mapping[str, Any] | None) -> str:
    """``%#v`` of a ``map[string]string``."""
    if labels is None:
        return "map[string]string(nil)"
    items = ", ".join(f"{_quote(key)}:{_quote(str(val))}" for key, val in sorted(labels.items()))
    return f"map[string]string{{{items}}}"


def _go_label_selector(selector: Mapping[str, Any]) -> str:
    """``%#v`` of a ``metav1.LabelSelector``."""
    expressions = selector.get("matchExpressions")
    if expressions is None:
        shown = "[]v1.LabelSelectorRequirement(nil)"
    else:
        rendered = []
        for expr in expressions:
            values = expr.get("values")
            values_text = (
                "[]string(nil)"
                if values is None
                else "[]string{" + ", ".join(_quote(str(v)) for v in values) + "}"
            )
            rendered.append(
                f"v1.LabelSelectorRequirement{{Key:{_quote(str(expr.get('key', '')))},"
                f" Operator:{_quote(str(expr.get('operator', '')))}, Values:{values_text}}}"
            )
        shown = "[]v1.LabelSelectorRequirement{" + ", ".join(rendered) + "}"
    labels = _go_string_map(selector.get("matchLabels"))
    return f"v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{shown}}}"


# --- decoding: values of the wrong JSON type ---------------------------------------------------


class UndecodableError(ValueError):
    """A body the API server cannot decode into the kind's Go type; ``str()`` is its message
    (without the ``<Kind> in version "v1" cannot be handled as a <Kind>:`` prefix)."""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _is_int32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31


class _Decoder:
    """Walks the fields :func:`validate` reads, failing like Go's ``encoding/json`` does:
    ``cannot unmarshal <JSON type> into Go struct field <Struct>.<json.path> of type <type>``."""

    def fail(self, value: Any, field: str, go_type: str) -> UndecodableError:
        shown = _json_type(value)
        if shown == "number" and go_type == "int32":
            shown = f"number {value!r}"  # Go names the literal that does not fit
        return UndecodableError(
            f"json: cannot unmarshal {shown} into Go struct field {field} of type {go_type}"
        )

    def string(self, value: Any, field: str, go_type: str = "string") -> None:
        if value is not None and not isinstance(value, str):
            raise self.fail(value, field, go_type)

    def int32(self, value: Any, field: str) -> None:
        if value is not None and not _is_int32(value):
            raise self.fail(value, field, "int32")

    def mapping(self, value: Any, field: str, go_type: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(value, field, go_type)
        return value

    def items(self, value: Any, field: str, item_type: str) -> Iterator[Mapping[str, Any]]:
        if value is None:
            return
        if not isinstance(value, list):
            raise self.fail(value, field, f"[]{item_type}")
        for item in value:
            yield self.mapping(item, field, item_type)

    def strings(self, value: Any, field: str) -> None:
        for item in self.mapping(value, field, "map[string]string").values():
            self.string(item, field)

    def meta(self, meta: Any, owner: str, path: str) -> None:
        meta = self.mapping(meta, f"{owner}.{path}", "v1.ObjectMeta")
        for name in ("name", "generateName", "namespace"):
            self.string(meta.get(name), f"ObjectMeta.{path}.{name}")
        for name in ("labels", "annotations"):
            self.strings(meta.get(name), f"ObjectMeta.{path}.{name}")

    def selector(self, selector: Any, owner: str, path: str) -> None:
        selector = self.mapping(selector, f"{owner}.{path}", "v1.LabelSelector")
        self.strings(selector.get("matchLabels"), f"LabelSelector.{path}.matchLabels")
        where = f"{path}.matchExpressions"
        for expr in self.items(
            selector.get("matchExpressions"),
            f"LabelSelector.{where}",
            "v1.LabelSelectorRequirement",
        ):
            self.string(expr.get("key"), f"LabelSelectorRequirement.{where}.key")
            self.string(
                expr.get("operator"),
                f"LabelSelectorRequirement.{where}.operator",
                "v1.LabelSelectorOperator",
            )
            values = expr.get("values")
            if values is not None and not isinstance(values, list):
                raise self.fail(values, f"LabelSelectorRequirement.{where}.values", "[]string")
            for value in values or []:
                self.string(value, f"LabelSelectorRequirement.{where}.values")

    def pod_spec(self, spec: Any, owner: str, path: str) -> None:
        spec = self.mapping(spec, f"{owner}.{path}", "v1.PodSpec")
        for name in ("serviceAccountName", "priorityClassName"):
            self.string(spec.get(name), f"PodSpec.{path}.{name}")
        self.strings(spec.get("nodeSelector"), f"PodSpec.{path}.nodeSelector")
        self.mapping(spec.get("affinity"), f"PodSpec.{path}.affinity", "v1.Affinity")
        for ref in self.items(
            spec.get("imagePullSecrets"),
            f"PodSpec.{path}.imagePullSecrets",
            "v1.LocalObjectReference",
        ):
            self.string(ref.get("name"), f"LocalObjectReference.{path}.imagePullSecrets.name")
        where = f"{path}.tolerations"
        for toleration in self.items(spec.get("tolerations"), f"PodSpec.{where}", "v1.Toleration"):
            for name, go_type in (
                ("key", "string"),
                ("operator", "v1.TolerationOperator"),
                ("value", "string"),
                ("effect", "v1.TaintEffect"),
            ):
                self.string(toleration.get(name), f"Toleration.{where}.{name}", go_type)
            seconds = toleration.get("tolerationSeconds")
            if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
                raise self.fail(seconds, f"Toleration.{where}.tolerationSeconds", "int64")
        for name in ("containers", "initContainers"):
            for container in self.items(spec.get(name), f"PodSpec.{path}.{name}", "v1.Container"):
                self.container(container, f"{path}.{name}")

    def container(self, container: Mapping[str, Any], path: str) -> None:
        self.string(container.get("name"), f"Container.{path}.name")
        for port in self.items(
            container.get("ports"), f"Container.{path}.ports", "v1.ContainerPort"
        ):
            self.string(port.get("name"), f"ContainerPort.{path}.ports.name")
            self.int32(port.get("containerPort"), f"ContainerPort.{path}.ports.containerPort")
            self.int32(port.get("hostPort"), f"ContainerPort.{path}.ports.hostPort")
            self.string(port.get("protocol"), f"ContainerPort.{path}.ports.protocol", "v1.Protocol")
        for var in self.items(container.get("env"), f"Container.{path}.env", "v1.EnvVar"):
            self.string(var.get("name"), f"EnvVar.{path}.env.name")
        resources = self.mapping(
            container.get("resources"), f"Container.{path}.resources", "v1.ResourceRequirements"
        )
        for name in ("limits", "requests"):
            field = f"ResourceRequirements.{path}.resources.{name}"
            for amount in self.mapping(resources.get(name), field, "v1.ResourceList").values():
                text = _quantity_text(amount)
                if text is not None:
                    try:
                        parse_quantity(text)
                    except QuantityError as exc:
                        raise UndecodableError(str(exc)) from None

    def service_spec(self, spec: Any) -> None:
        spec = self.mapping(spec, "Service.spec", "v1.ServiceSpec")
        self.strings(spec.get("selector"), "ServiceSpec.spec.selector")
        for port in self.items(spec.get("ports"), "ServiceSpec.spec.ports", "v1.ServicePort"):
            self.string(port.get("name"), "ServicePort.spec.ports.name")
            self.int32(port.get("port"), "ServicePort.spec.ports.port")
            self.string(port.get("protocol"), "ServicePort.spec.ports.protocol", "v1.Protocol")
            target = port.get("targetPort")
            # IntOrString decodes itself: its errors name no struct field.
            if target is not None and not isinstance(target, str) and not _is_int32(target):
                shown = _json_type(target)
                if shown == "number":
                    shown = f"number {target!r}"
                raise UndecodableError(
                    f"json: cannot unmarshal {shown} into Go value of type int32"
                )


def _quantity_text(value: Any) -> str | None:
    """The text ``Quantity.UnmarshalJSON`` parses: a string's content, else the raw JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    return json.dumps(value, separators=(",", ":"))


def decode_error(group: str, plural: str, obj: Mapping[str, Any]) -> str | None:
    """Why the API server could not decode ``obj`` into its Go type, or None if it could
    (only for the fields :func:`validate` reads)."""
    builtin = BUILTINS.get((group, plural))
    if builtin is None:
        return None
    kind = builtin[0]
    decoder = _Decoder()
    try:
        decoder.meta(obj.get("metadata"), kind, "metadata")
        spec = obj.get("spec")
        if (group, plural) == ("", "pods"):
            decoder.pod_spec(spec, "Pod", "spec")
        elif (group, plural) in _WORKLOADS:
            spec = decoder.mapping(spec, f"{kind}.spec", f"v1.{kind}Spec")
            decoder.selector(spec.get("selector"), f"{kind}Spec", "spec.selector")
            template = decoder.mapping(
                spec.get("template"), f"{kind}Spec.spec.template", "v1.PodTemplateSpec"
            )
            decoder.meta(template.get("metadata"), "PodTemplateSpec", "spec.template.metadata")
            decoder.pod_spec(template.get("spec"), "PodTemplateSpec", "spec.template.spec")
        elif (group, plural) == ("", "services"):
            decoder.service_spec(spec)
    except UndecodableError as exc:
        return str(exc)
    return None


def go_value(value: Any) -> str:
    """``fmt.Sprintf("%+v", v)`` of a decoded JSON value (maps sorted by key, as Go prints)."""
    if isinstance(value, Mapping):
        items = " ".join(f"{key}:{go_value(val)}" for key, val in sorted(value.items()))
        return f"map[{items}]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(item) for item in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_float(float(value))
    return str(value)


def _go_float(number: float) -> str:
    """``%v`` of a float64: the shortest digits, in exponent form when the exponent is below
    -4 or from 6 (``1e+06``, ``0.5``, ``1.5e-05``)."""
    shortest = decimal.Decimal(repr(number))
    exponent = shortest.adjusted()
    if number == 0 or -4 <= exponent < 6:
        text = format(shortest, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    sign, digits, _ = shortest.normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    mantissa = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}e{exponent:+03d}"


def undecodable_patch(shown: str, message: str) -> FieldError:
    """The API server's error for a patch whose result does not decode: on field ``patch``,
    with the patched object (JSON and merge patches) or the patch (strategic merge) shown."""
    return _invalid("patch", shown, message)


# --- validation of decoded objects -----------------------------------------------------------


def validate(group: str, plural: str, obj: Mapping[str, Any]) -> list[FieldError]:
    """The API server's field errors for a built-in object; [] for other kinds and for a
    valid object. Expects an object :func:`decode_error` accepts."""
    builtin = BUILTINS.get((group, plural))
    if builtin is None:
        return []
    errors = list(_object_meta(obj.get("metadata") or {}, builtin[1]))
    spec = obj.get("spec") or {}
    if (group, plural) == ("", "pods"):
        errors += _pod_spec(spec, "spec")
    elif (group, plural) in _WORKLOADS:
        errors += _workload_spec(spec, must_match=(group, plural) in _SELECTOR_MUST_MATCH)
        if (group, plural) == ("batch", "jobs") and spec.get("podFailurePolicy") is not None:
            errors += _pod_failure_policy(spec)
    elif (group, plural) == ("", "services"):
        errors += _service_spec(spec)
    return errors


def _object_meta(meta: Mapping[str, Any], name_rule: NameRule) -> Iterator[FieldError]:
    generate_name = meta.get("generateName")
    if generate_name:
        for message in name_rule(_name_as_prefix(generate_name)):
            yield _invalid("metadata.generateName", generate_name, message)
    name = meta.get("name")
    if name:
        for message in name_rule(name):
            yield _invalid("metadata.name", name, message)
    yield from _labels(meta.get("labels"), "metadata.labels")
    yield from _annotations(meta.get("annotations"), "metadata.annotations")


def _labels(labels: Mapping[str, str] | None, path: str) -> Iterator[FieldError]:
    """``ValidateLabels``: every error on the map's path, with the bad key or value."""
    for key, value in (labels or {}).items():
        for message in is_qualified_name(key):
            yield _invalid(path, key, message)
        for message in is_valid_label_value(value):
            yield _invalid(path, value, message)


def _annotations(annotations: Mapping[str, str] | None, path: str) -> Iterator[FieldError]:
    total = 0
    for key, value in (annotations or {}).items():
        for message in is_qualified_name(key.lower()):
            yield _invalid(path, key, message)
        total += len(key) + len(value)
    if total > _TOTAL_ANNOTATION_SIZE:
        detail = f"Too long: may not be more than {_TOTAL_ANNOTATION_SIZE} bytes"
        yield FieldError("FieldValueTooLong", path, detail)


def _label_selector(selector: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidateLabelSelector`` with invalid label values rejected."""
    errors = list(_labels(selector.get("matchLabels"), f"{path}.matchLabels"))
    for index, expr in enumerate(selector.get("matchExpressions") or []):
        where = f"{path}.matchExpressions[{index}]"
        operator, values = expr.get("operator", ""), expr.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(
                    _required(
                        f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(
                    _forbidden(
                        f"{where}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            errors.append(_invalid(f"{where}.operator", operator, "not a valid selector operator"))
        errors += [
            _invalid(f"{where}.key", expr.get("key", ""), message)
            for message in is_qualified_name(expr.get("key", ""))
        ]
        for value_index, value in enumerate(values):
            errors += [
                _invalid(f"{where}.values[{value_index}]", value, message)
                for message in is_valid_label_value(value)
            ]
    return errors


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, values = expr.get("key"), expr.get("values") or []
        match expr.get("operator"):
            case "In":
                ok = key in labels and labels[key] in values
            case "NotIn":
                ok = key not in labels or labels[key] not in values
            case "Exists":
                ok = key in labels
            case _:
                ok = key not in labels
        if not ok:
            return False
    return True


def _workload_spec(spec: Mapping[str, Any], *, must_match: bool) -> list[FieldError]:
    """A Job's, Deployment's or ReplicaSet's selector and pod template."""
    errors: list[FieldError] = []
    selector = spec.get("selector")
    template = spec.get("template") or {}
    template_meta = template.get("metadata") or {}
    if selector is not None:
        selector_errors = _label_selector(selector, "spec.selector")
        errors += selector_errors
        if must_match:
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                errors.append(
                    _invalid_go(
                        "spec.selector",
                        _go_label_selector(selector),
                        "empty selector is invalid for deployment",
                    )
                )
            elif selector_errors:
                # The API server cannot build the selector, so it does not look at the template.
                errors.append(
                    _invalid_go(
                        "spec.selector", _go_label_selector(selector), "invalid label selector"
                    )
                )
                return errors
            elif not _selector_matches(selector, template_meta.get("labels") or {}):
                errors.append(
                    _invalid_go(
                        "spec.template.metadata.labels",
                        _go_string_map(template_meta.get("labels")),
                        "`selector` does not match template `labels`",
                    )
                )
    errors += _labels(template_meta.get("labels"), "spec.template.labels")
    errors += _annotations(template_meta.get("annotations"), "spec.template.annotations")
    errors += _pod_spec(template.get("spec") or {}, "spec.template.spec")
    return errors


_POD_FAILURE_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
_EXIT_CODE_OPERATORS = ("In", "NotIn")
_MAX_POD_FAILURE_RULES = 20
_MAX_EXIT_CODE_VALUES = 255


def _pod_failure_policy(spec: Mapping[str, Any]) -> list[FieldError]:
    """A Job's ``podFailurePolicy``: only with ``restartPolicy: Never``; each rule an action
    and exactly one of ``onExitCodes`` (operator, a container of the template, ordered
    distinct codes, no 0 for ``In``) and ``onPodConditions``."""
    errors: list[FieldError] = []
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    restart = pod_spec.get("restartPolicy", "")
    if restart != "Never":
        errors.append(
            _invalid(
                "spec.template.spec.restartPolicy",
                restart,
                'only "Never" is supported when podFailurePolicy is specified',
            )
        )
    rules = (spec.get("podFailurePolicy") or {}).get("rules") or []
    if len(rules) > _MAX_POD_FAILURE_RULES:
        errors.append(
            FieldError(
                "FieldValueTooMany",
                "spec.podFailurePolicy.rules",
                f"Too many: {len(rules)}: must have at most {_MAX_POD_FAILURE_RULES} items",
            )
        )
    containers = {
        c.get("name") for key in ("containers", "initContainers") for c in pod_spec.get(key) or []
    }
    for i, rule in enumerate(rules):
        path = f"spec.podFailurePolicy.rules[{i}]"
        action = rule.get("action") or ""
        if not action:
            errors.append(
                _required(f"{path}.action", "valid values: " + str(list(_POD_FAILURE_ACTIONS)))
            )
        elif action == "FailIndex":
            if spec.get("backoffLimitPerIndex") is None:
                errors.append(
                    _invalid(
                        f"{path}.action", action, "requires the backoffLimitPerIndex to be set"
                    )
                )
        elif action not in _POD_FAILURE_ACTIONS:
            errors.append(_not_supported(f"{path}.action", action, _POD_FAILURE_ACTIONS))
        codes = rule.get("onExitCodes")
        if codes is not None:
            errors += _on_exit_codes(codes, f"{path}.onExitCodes", containers)
        if codes is not None and rule.get("onPodConditions"):
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    path,
                    "Invalid value: specifying both OnExitCodes and OnPodConditions is not "
                    "supported",
                )
            )
        if codes is None and not rule.get("onPodConditions"):
            errors.append(
                FieldError(
                    "FieldValueInvalid",
                    path,
                    "Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                )
            )
    return errors


def _on_exit_codes(codes: Mapping[str, Any], path: str, containers: set[Any]) -> list[FieldError]:
    errors: list[FieldError] = []
    operator = codes.get("operator") or ""
    if not operator:
        errors.append(_required(f"{path}.operator", 'valid values: ["In" "NotIn"]'))
    elif operator not in _EXIT_CODE_OPERATORS:
        errors.append(_not_supported(f"{path}.operator", operator, _EXIT_CODE_OPERATORS))
    container = codes.get("containerName")
    if container is not None and container not in containers:
        errors.append(
            _invalid(
                f"{path}.containerName",
                container,
                "must be one of the container or initContainer names in the pod template",
            )
        )
    values: list[Any] = list(codes.get("values") or [])
    shown = "[]int32{" + ", ".join(str(v) for v in values) + "}"
    if not values:
        errors.append(
            _invalid_go(f"{path}.values", "[]int32(nil)", "at least one value is required")
        )
    elif len(values) > _MAX_EXIT_CODE_VALUES:
        errors.append(
            FieldError(
                "FieldValueTooMany",
                f"{path}.values",
                f"Too many: {len(values)}: must have at most {_MAX_EXIT_CODE_VALUES} items",
            )
        )
    seen: set[Any] = set()
    for j, value in enumerate(values):
        if operator == "In" and value == 0:
            errors.append(_invalid(f"{path}.values[{j}]", 0, "must not be 0 for the In operator"))
        if value in seen:
            errors.append(
                FieldError(
                    "FieldValueDuplicate", f"{path}.values[{j}]", f"Duplicate value: {value}"
                )
            )
        seen.add(value)
    if any(a > b for a, b in zip(values, values[1:], strict=False)):
        errors.append(_invalid_go(f"{path}.values", shown, "must be ordered"))
    return errors


def _invalid_go(path: str, shown: str, detail: str) -> FieldError:
    """An Invalid error whose bad value is already rendered (Go syntax of a struct or map)."""
    return FieldError("FieldValueInvalid", path, f"Invalid value: {shown}: {detail}")


def _pod_spec(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for field in ("containers", "initContainers"):
        for index, container in enumerate(spec.get(field) or []):
            where = f"{path}.{field}[{index}]"
            name = container.get("name") or ""
            if not name:
                errors.append(_required(f"{where}.name"))
            else:
                errors += [_invalid(f"{where}.name", name, m) for m in is_dns1123_label(name)]
                if name in names:
                    errors.append(_duplicate(f"{where}.name", name))
                names.add(name)
            errors += _container_ports(container.get("ports") or [], f"{where}.ports")
            errors += _env(container.get("env") or [], f"{where}.env")
            errors += _resources(container.get("resources") or {}, f"{where}.resources")
    errors += _pod_overridables(spec, path)
    return errors


_TOLERATION_OPERATORS = ("Equal", "Exists")
_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
_NODE_SELECTOR_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")


def _go_toleration(toleration: Mapping[str, Any]) -> str:
    """``%#v`` of a ``core.Toleration``."""
    seconds = toleration.get("tolerationSeconds")
    shown = "(*int64)(nil)" if seconds is None else f"(*int64)({seconds})"
    fields = ", ".join(
        f"{name}:{_quote(str(toleration.get(key) or ''))}"
        for name, key in (("Key", "key"), ("Operator", "operator"), ("Value", "value"))
    )
    effect = _quote(str(toleration.get("effect") or ""))
    return f"core.Toleration{{{fields}, Effect:{effect}, TolerationSeconds:{shown}}}"


def _tolerations(tolerations: list[Mapping[str, Any]], path: str) -> list[FieldError]:
    """``ValidateTolerations``."""
    errors: list[FieldError] = []
    for index, toleration in enumerate(tolerations):
        where = f"{path}[{index}]"
        key, operator = toleration.get("key") or "", toleration.get("operator") or ""
        value, effect = toleration.get("value") or "", toleration.get("effect") or ""
        if key:
            errors += [_invalid(f"{where}.key", key, m) for m in is_qualified_name(key)]
        elif operator != "Exists":
            errors.append(
                _invalid(
                    f"{where}.operator",
                    operator,
                    "operator must be Exists when `key` is empty, which means "
                    '"match all values and all keys"',
                )
            )
        if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
            errors.append(
                _invalid(
                    f"{where}.effect",
                    effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if operator in ("", "Equal"):
            errors += [_invalid(f"{where}.operator", value, m) for m in is_valid_label_value(value)]
        elif operator == "Exists":
            if value:
                errors.append(
                    _invalid_go(
                        f"{where}.operator",
                        _go_toleration(toleration),
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            errors.append(_not_supported(f"{where}.operator", operator, _TOLERATION_OPERATORS))
        if effect and effect not in _TAINT_EFFECTS:
            errors.append(_not_supported(f"{where}.effect", effect, _TAINT_EFFECTS))
    return errors


def _node_affinity(affinity: Mapping[str, Any], path: str) -> list[FieldError]:
    """The node-selector requirements of ``nodeAffinity`` (``ValidateNodeSelectorRequirement``)."""
    errors: list[FieldError] = []
    node = affinity.get("nodeAffinity") or {}
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    terms: list[tuple[str, Mapping[str, Any]]] = []
    if required is not None:
        where = f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        if not required.get("nodeSelectorTerms"):
            errors.append(
                _required(f"{where}.nodeSelectorTerms", "must have at least one node selector term")
            )
        for index, term in enumerate(required.get("nodeSelectorTerms") or []):
            terms.append((f"{where}.nodeSelectorTerms[{index}]", term))
    preferred = node.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    for index, item in enumerate(preferred):
        where = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{index}]"
        weight = item.get("weight")
        if not isinstance(weight, int) or not 1 <= weight <= 100:
            errors.append(_invalid(f"{where}.weight", weight, "must be in the range 1-100"))
        terms.append((f"{where}.preference", item.get("preference") or {}))
    for where, term in terms:
        for index, expr in enumerate(term.get("matchExpressions") or []):
            at = f"{where}.matchExpressions[{index}]"
            operator, values = expr.get("operator") or "", expr.get("values") or []
            if operator in ("In", "NotIn") and not values:
                errors.append(
                    _required(
                        f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
            elif operator in ("Exists", "DoesNotExist") and values:
                errors.append(
                    _forbidden(
                        f"{at}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
            elif operator in ("Gt", "Lt") and len(values) != 1:
                errors.append(
                    _required(
                        f"{at}.values",
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    )
                )
            elif operator not in _NODE_SELECTOR_OPERATORS:
                errors.append(_invalid(f"{at}.operator", operator, "not a valid selector operator"))
            key = expr.get("key") or ""
            errors += [_invalid(f"{at}.key", key, m) for m in is_qualified_name(key)]
    return errors


def _pod_overridables(spec: Mapping[str, Any], path: str) -> list[FieldError]:
    """Where and as whom the pod runs: ServiceAccount, node selection, pull Secrets, priority."""
    errors: list[FieldError] = []
    for field in ("serviceAccountName", "priorityClassName"):
        name = spec.get(field)
        if name:
            errors += [_invalid(f"{path}.{field}", name, m) for m in is_dns1123_subdomain(name)]
    errors += _labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    errors += _tolerations(spec.get("tolerations") or [], f"{path}.tolerations")
    errors += _node_affinity(spec.get("affinity") or {}, f"{path}.affinity")
    for index, ref in enumerate(spec.get("imagePullSecrets") or []):
        where = f"{path}.imagePullSecrets[{index}].name"
        name = ref.get("name") or ""
        if not name:
            errors.append(_required(where))
        else:
            errors += [_invalid(where, name, m) for m in is_dns1123_subdomain(name)]
    return errors


def _container_ports(ports: list[Mapping[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"{path}[{index}]"
        name = port.get("name") or ""
        if name:
            messages = is_valid_port_name(name)
            errors += [_invalid(f"{where}.name", name, message) for message in messages]
            if not messages and name in names:
                errors.append(_duplicate(f"{where}.name", name))
            names.add(name)
        number = port.get("containerPort") or 0
        if number == 0:
            errors.append(_required(f"{where}.containerPort"))
        else:
            errors += [
                _invalid(f"{where}.containerPort", number, m) for m in is_valid_port_num(number)
            ]
        host = port.get("hostPort") or 0
        if host != 0:
            errors += [_invalid(f"{where}.hostPort", host, m) for m in is_valid_port_num(host)]
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            errors.append(_not_supported(f"{where}.protocol", protocol, _PROTOCOLS))
    return errors


def _env(env: list[Mapping[str, Any]], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, var in enumerate(env):
        name = var.get("name") or ""
        if not name:
            errors.append(_required(f"{path}[{index}].name"))
        errors += [_invalid(f"{path}[{index}].name", name, m) for m in is_env_var_name(name)]
    return errors


_STANDARD_RESOURCES = frozenset(
    {
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "services",
        "replicationcontrollers",
        "resourcequotas",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
    }
)
_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_huge_pages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_extended(name: str) -> bool:
    """``IsExtendedResourceName``: ``example.com/gpu``, counted in whole units."""
    if _is_native(name) or name.startswith("requests."):
        return False
    return not is_qualified_name(f"requests.{name}")


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not _is_huge_pages(name)


def _resource_name(name: str, path: str) -> list[FieldError]:
    """``validateContainerResourceName``."""
    errors = [_invalid(path, name, message) for message in is_qualified_name(name)]
    if not errors and "/" not in name and not (_is_huge_pages(name) or name in _STANDARD_RESOURCES):
        errors.append(_invalid(path, name, "must be a standard resource type or fully qualified"))
    if "/" not in name:
        if not (_is_huge_pages(name) or name in _CONTAINER_RESOURCES):
            errors.append(_invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and not _is_extended(name):
        errors.append(_invalid(path, name, "doesn't follow extended resource name standard"))
    return errors


def _amounts(resources: Mapping[str, Any], field: str) -> dict[str, Quantity]:
    amounts = {}
    for name, value in (resources.get(field) or {}).items():
        text = _quantity_text(value)
        try:
            amounts[name] = parse_quantity(text) if text is not None else parse_quantity("0")
        except QuantityError:
            continue  # an undecodable object: decode_error() reports it
    return amounts


def _resource_amount(name: str, amount: Quantity, path: str) -> list[FieldError]:
    """``ValidateResourceQuantityValue``."""
    errors = []
    if amount.value < 0:
        errors.append(_invalid(path, str(amount), "must be greater than or equal to 0"))
    if _is_extended(name) and amount.value != amount.value.to_integral_value():
        errors.append(_invalid(path, str(amount), "must be an integer"))
    return errors


def _resources(resources: Mapping[str, Any], path: str) -> list[FieldError]:
    """``ValidateResourceRequirements`` (resource names in sorted order: Go's is random)."""
    errors: list[FieldError] = []
    limits, requests = _amounts(resources, "limits"), _amounts(resources, "requests")
    for name, amount in sorted(limits.items()):
        where = f"{path}.limits[{name}]"
        errors += _resource_name(name, where)
        errors += _resource_amount(name, amount, where)
    for name, amount in sorted(requests.items()):
        where = f"{path}.requests[{name}]"
        errors += _resource_name(name, where)
        errors += _resource_amount(name, amount, where)
        limit = limits.get(name)
        if limit is not None:
            if amount.value != limit.value and not _overcommit_allowed(name):
                errors.append(
                    _invalid(
                        f"{path}.requests", str(amount), f"must be equal to {name} limit of {limit}"
                    )
                )
            elif amount.value > limit.value:
                errors.append(
                    _invalid(
                        f"{path}.requests",
                        str(amount),
                        f"must be less than or equal to {name} limit of {limit}",
                    )
                )
        elif not _overcommit_allowed(name):
            errors.append(
                _required(f"{path}.limits", "Limit must be set for non overcommitable resources")
            )
    names = set(limits) | set(requests)
    if any(_is_huge_pages(name) for name in names) and not names & {"cpu", "memory"}:
        errors.append(_forbidden(path, "HugePages require cpu or memory"))
    return errors


def _service_spec(spec: Mapping[str, Any]) -> list[FieldError]:
    errors = list(_labels(spec.get("selector"), "spec.selector"))
    ports = spec.get("ports") or []
    names: set[str] = set()
    for index, port in enumerate(ports):
        where = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if not name and len(ports) > 1:
            errors.append(_required(f"{where}.name"))
        elif name:
            errors += [_invalid(f"{where}.name", name, m) for m in is_dns1123_label(name)]
            if name in names:
                errors.append(_duplicate(f"{where}.name", name))
            names.add(name)
        number = port.get("port") or 0
        errors += [_invalid(f"{where}.port", number, m) for m in is_valid_port_num(number)]
        protocol = port.get("protocol")
        if protocol is not None and protocol not in _PROTOCOLS:
            errors.append(_not_supported(f"{where}.protocol", protocol, _PROTOCOLS))
        # An unset targetPort (0 or "") defaults to the port.
        target = port.get("targetPort")
        if isinstance(target, str) and target:
            errors += [
                _invalid(f"{where}.targetPort", target, m) for m in is_valid_port_name(target)
            ]
        elif isinstance(target, int) and target != 0:
            errors += [
                _invalid(f"{where}.targetPort", target, m) for m in is_valid_port_num(target)
            ]
    return errors
