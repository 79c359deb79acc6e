#!/bin/sh
# Post-install check for a gateway installed by deploy/gateway-install.md: run it as root on
# the Raspberry Pi after step 2. It checks what a wrong install gets wrong (server packages
# pulled in, a unit that systemd rejects, a CLI that crashes without Bluetooth) and exits
# non-zero on the first failure.
set -u
VENV=${EGENMON_GATEWAY_VENV:-/opt/egenmon/venv}
UNIT=${EGENMON_GATEWAY_UNIT:-/etc/systemd/system/egenmon-gateway.service}
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

[ -x "$VENV/bin/python" ] || fail "no venv at $VENV"
for server_only in numpy fastapi psycopg; do
    if "$VENV/bin/python" -c "import $server_only" 2>/dev/null; then
        fail "$server_only is installed: install the wheel with [gateway], not [server]"
    fi
done
ok "no server packages (numpy, fastapi, psycopg)"
"$VENV/bin/python" -c "import gateway, bleak, paho.mqtt, dbus_fast" || fail "gateway dependencies do not import"
ok "gateway imports on $("$VENV/bin/python" -c 'import platform; print(platform.machine())')"
echo "venv size: $(du -sh "$VENV" | cut -f1)"

"$VENV/bin/egenmon-gateway" --help >/dev/null || fail "egenmon-gateway --help failed"
ok "egenmon-gateway CLI starts"

if [ -f "$UNIT" ]; then
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
        ok "unit verifies"
    else
        echo "skip: systemd-analyze not found, unit not verified"
    fi
else
    fail "no unit at $UNIT (step 2 copies it)"
fi
id egenmon-gw >/dev/null 2>&1 || fail "no service user egenmon-gw"
id -nG egenmon-gw | grep -qw bluetooth || fail "egenmon-gw is not in the bluetooth group"
ok "service user egenmon-gw in group bluetooth"
echo "all checks passed"
