#!/usr/bin/env bash
# Vendor the browser libraries vmdeck's web UI serves itself (never from a CDN):
# noVNC (ES modules, core/rfb.js), xterm.js and Swagger UI (the API reference page), at pinned versions from the npm registry,
# copied into src/vmdeck/web/static/vendor/. node_modules stays in a scratch dir, out of git.
# Idempotent: does nothing when the stamp says these exact versions are already there.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="$ROOT/src/vmdeck/web/static/vendor"
NOVNC=1.7.0
XTERM=6.0.0
XTERM_FIT=0.11.0
SWAGGER=5.35.0
WANT="novnc=$NOVNC xterm=$XTERM addon-fit=$XTERM_FIT swagger-ui=$SWAGGER"

if [ -f "$DEST/VERSIONS" ] && [ "$(cat "$DEST/VERSIONS")" = "$WANT" ]; then
    exit 0
fi
command -v npm >/dev/null || { echo "fetch-web-assets: npm is missing (apt-get install npm)" >&2; exit 5; }

BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
echo '{"name": "vmdeck-web-assets", "private": true}' > "$BUILD/package.json"
npm install --prefix "$BUILD" --no-audit --no-fund --save-exact --loglevel=error \
    "@novnc/novnc@$NOVNC" "@xterm/xterm@$XTERM" "@xterm/addon-fit@$XTERM_FIT" "swagger-ui-dist@$SWAGGER" >/dev/null

mods="$BUILD/node_modules"
rm -rf "$DEST/novnc" "$DEST/xterm" "$DEST/swagger-ui"
mkdir -p "$DEST/novnc" "$DEST/xterm" "$DEST/swagger-ui"
# noVNC's ES modules run in the browser as they are: core/ imports ../vendor/pako/.
cp -r "$mods/@novnc/novnc/core" "$mods/@novnc/novnc/vendor" "$mods/@novnc/novnc/LICENSE.txt" "$DEST/novnc/"
cp "$mods/@xterm/xterm/lib/xterm.mjs" "$mods/@xterm/xterm/css/xterm.css" "$DEST/xterm/"
cp "$mods/@xterm/xterm/LICENSE" "$DEST/xterm/LICENSE"
cp "$mods/@xterm/addon-fit/lib/addon-fit.mjs" "$DEST/xterm/"
# Swagger UI: the standalone bundle and its stylesheet (no CDN, no initializer with inline script).
cp "$mods/swagger-ui-dist/swagger-ui-bundle.js" "$mods/swagger-ui-dist/swagger-ui.css" "$mods/swagger-ui-dist/LICENSE" "$DEST/swagger-ui/"
echo "$WANT" > "$DEST/VERSIONS"
echo "vendored noVNC $NOVNC, xterm.js $XTERM and Swagger UI $SWAGGER into $DEST"
