"""The private local Ray listens on loopback only, with no metrics endpoint."""

import ipaddress
import os
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import json, time
    import psutil, ray
    from chromtune.ray_runtime import start_ray

    start_ray(None)

    @ray.remote
    def pid():
        return 0

    ray.get([pid.remote() for _ in range(2)])  # start workers too
    time.sleep(2)
    me = psutil.Process()
    sockets = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    sockets.append([proc.name(), conn.laddr.ip, conn.laddr.port])
        except psutil.Error:
            pass
    print(json.dumps(sockets))
    ray.shutdown()
""")


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only(tmp_path):
    pytest.importorskip("psutil")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300, start_new_session=True)
    assert result.returncode == 0, result.stderr[-3000:]
    sockets = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets
    outside = [s for s in sockets if not is_loopback(s[1])]
    assert outside == [], f"listening outside 127.0.0.0/8: {outside}"


def test_loopback_check():
    assert is_loopback("127.0.0.1") and is_loopback("::ffff:127.0.0.1") and is_loopback("::1")
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2"]))
