#!/usr/bin/env bash
# Installs the Python tools the mesh-config tests run into a venv under the target directory,
# so nothing touches the system's Python. Idempotent: a venv whose requirements are unchanged
# is left as it is.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${MESH_CONFIG_VENV:-"$root/target/mesh-config-venv"}
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$here/requirements.txt" "$stamp"; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
cp "$here/requirements.txt" "$stamp"
