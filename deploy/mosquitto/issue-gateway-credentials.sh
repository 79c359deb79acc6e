#!/bin/sh
# Issue (or rotate) a gateway's broker password.
#   issue-gateway-credentials.sh GATEWAY_ID [PASSWORD_FILE]
# Prints the new password once on stdout (hand it to the enrollment record); the password
# file keeps only its salted hash. Reload the broker afterwards: systemctl reload mosquitto
set -eu

gateway_id="${1:?usage: $0 GATEWAY_ID [PASSWORD_FILE]}"
passwd_file="${2:-/etc/mosquitto/egenmon/passwd}"

# Same rule as device_profiles.wire.GATEWAY_ID_PATTERN; it also keeps "%u" in the ACL safe.
if ! printf '%s' "$gateway_id" | grep -Eq '^[a-z0-9][a-z0-9-]{2,62}$'; then
    echo "invalid gateway id: $gateway_id" >&2
    exit 2
fi
# Service accounts, and the "egenmon-" prefix of the services' client ids (the broker uses a
# gateway's username as its client id; see mosquitto.conf).
case "$gateway_id" in ingest|platform|egenmon-*) echo "reserved user name: $gateway_id" >&2; exit 2 ;; esac

password="$(openssl rand -base64 24 | tr -d '/+=\n')"
umask 077
if [ -f "$passwd_file" ]; then
    mosquitto_passwd -b "$passwd_file" "$gateway_id" "$password"
else
    mosquitto_passwd -c -b "$passwd_file" "$gateway_id" "$password"
fi
printf '%s\n' "$password"
