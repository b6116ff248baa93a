"""The Pod Security Standards' ``restricted`` profile (Kubernetes 1.33, the ``baseline``
checks included), as the admission controller applies it to a pod spec: no Python library
implements it, so the checks are written out here, one message per violation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod.get(field) or []:
            yield f"{field}[{container.get('name')}]", container


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec (``spec`` of a Pod, ``spec.template.spec`` of a workload) out of
    a namespace labelled ``pod-security.kubernetes.io/enforce: restricted``; empty if none."""
    found: list[str] = []
    pod_security = pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            found.append(f"{host} is true")
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            found.append(
                f"volume {volume.get('name')} is of type {sorted(kinds - RESTRICTED_VOLUMES)}"
            )
    for sysctl in pod_security.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not a safe one")
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type")
    pod_non_root = pod_security.get("runAsNonRoot")
    if pod_security.get("runAsUser") == 0:
        found.append("the pod runs as user 0")
    found += _selinux("pod", pod_security)
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        found.append(f"the pod's seccompProfile is {pod_seccomp}")
    if (pod_security.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append("the pod's appArmorProfile is Unconfined")
    for where, container in _containers(pod):
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            found.append(f"{where} is privileged")
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where} does not set allowPrivilegeEscalation: false")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{where} does not drop ALL capabilities")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"{where} adds capabilities {sorted(added)}")
        non_root = security.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            found.append(f"{where} does not run as non-root (runAsNonRoot: true)")
        if security.get("runAsUser") == 0:
            found.append(f"{where} runs as user 0")
        seccomp = (security.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where} has no RuntimeDefault or Localhost seccompProfile")
        if (security.get("appArmorProfile") or {}).get("type") == "Unconfined":
            found.append(f"{where}'s appArmorProfile is Unconfined")
        if security.get("procMount", "Default") != "Default":
            found.append(f"{where} has procMount {security['procMount']}")
        found += _selinux(where, security)
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"{where} uses hostPort {port['hostPort']}")
    return found


def _selinux(where: str, security: dict[str, Any]) -> list[str]:
    options = security.get("seLinuxOptions") or {}
    found = []
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"{where} sets SELinux type {options['type']}")
    if options.get("user") or options.get("role"):
        found.append(f"{where} sets an SELinux user or role")
    return found
