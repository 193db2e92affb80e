# Sourced by the other scripts: makes sure uv is installed and sets $UV to run it.
if command -v uv >/dev/null 2>&1; then
  UV=uv
else
  python3 -m pip install --quiet --disable-pip-version-check uv >&2
  if command -v uv >/dev/null 2>&1; then UV=uv; else UV="python3 -m uv"; fi
fi
export UV
