#!/usr/bin/env bash
# Packaging stage of `make test` (also `make packaging`): mmcam_ext as a user
# installs it into an existing MMPretrain environment, outside the clone.
#
#  1. build the sdist and, from it, the wheel (isolated build, from a copy of
#     the clone's files);
#  2. a fresh venv holding a user's stack only: the local torch pair,
#     mmpretrain, mmengine, mmcv-lite, setuptools<81 (no grad-cam);
#  3. installing the wheel changes no installed package and brings nothing
#     but mmcam_ext (pip --dry-run --report, then pip freeze before/after);
#     pip check; one cv2 that writes PNGs;
#  4. the demo extras in a second step (additions only); from a folder
#     outside the clone: mmcam-demo, mmcam-vis-cam, python -m mmcam_ext,
#     a config with custom_imports (Config.fromfile + the hook built);
#     the no-grad-cam tests against the installed package; the analysis
#     extra: mmcam-patterns and mmcam-mine on dumps;
#  5. reinstall from the sdist and run the console script again;
#  6. grad-cam 1.4.8 (what mmpretrain[optional] installs): the engine and
#     library-method tests against it;
#  7. mim run mmcam_ext vis_cam (openmim without its dependencies);
#  8. pip install -e in a stock venv, with and without build isolation.
#
# Everything lives in one temporary folder, removed at the end
# (MMCAM_PKG_KEEP=1 keeps it; MMCAM_PKG_WORK=DIR chooses it).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/requirements/lock.txt"
PYTHON="${PYTHON:-python3}"
DEV_PY="${DEV_PY:-$ROOT/.venv/bin/python}"
WORK="${MMCAM_PKG_WORK:-$(mktemp -d -t mmcam-pkg.XXXXXX)}"
mkdir -p "$WORK"
VENV="$WORK/user-venv"
VPY="$VENV/bin/python"
RUN="$WORK/run"  # the user's folder: outside the clone
# One thread: the CAM grids of the four entry points must be byte-equal.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# A user's shell has no PYTHONPATH into the clone (a developer's may: then
# every check below would import the clone's mmcam_ext, not the wheel's).
unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE
export PYTHONNOUSERSITE=1
PASSED=0
FAILED=0
START=$SECONDS

cleanup() {
  if [ "${MMCAM_PKG_KEEP:-0}" = 1 ]; then
    echo "packaging: kept $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

quiet_pip() {  # pip without the local-index noise; errors kept
  "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }
  return "${PIPESTATUS[0]}"
}

check() {  # check "what" command...: run, count, report with its time
  local what="$1" t0=$SECONDS
  shift
  if "$@" >"$WORK/last.log" 2>&1; then
    PASSED=$((PASSED + 1))
    echo "packaging: ok   $what ($((SECONDS - t0)) s)"
    grep -E "^(dry-run|freeze-diff|check_opencv|export|user:)" "$WORK/last.log" | sed 's/^/    /'
  else
    FAILED=$((FAILED + 1))
    echo "packaging: FAIL $what ($((SECONDS - t0)) s)"
    tail -n 40 "$WORK/last.log" | sed 's/^/    /'
  fi
}

freeze() { "$VPY" -m pip freeze --all 2>/dev/null | grep -v "^pip==" > "$1"; }

# ----------------------------------------------------------------- 1 build
build() {
  "$DEV_PY" "$ROOT/scripts/packaging_tools.py" export "$ROOT" "$WORK/src" &&
    "$DEV_PY" -m build --outdir "$WORK/dist" "$WORK/src" &&
    WHEEL="$(ls "$WORK"/dist/*.whl)" && SDIST="$(ls "$WORK"/dist/*.tar.gz)" &&
    echo "$WHEEL" > "$WORK/wheel.path" && echo "$SDIST" > "$WORK/sdist.path"
}

# -------------------------------------------------------- 2 the user stack
user_stack() {
  "$PYTHON" -m venv "$VENV" &&
    quiet_pip "$VPY" -m pip install -q -c "$LOCK" \
      "$(grep -E '^torch==' "$LOCK")" \
      "$(grep -E '^torchvision==' "$LOCK")" &&
    quiet_pip "$VPY" -m pip install -q -c "$LOCK" mmpretrain mmengine \
      mmcv-lite setuptools &&
    ! "$VPY" -m pip show -q grad-cam 2>/dev/null
}

# ------------------------------------------------------ 3 install the wheel
install_wheel() {
  freeze "$WORK/freeze-0.txt" &&
    quiet_pip "$VPY" -m pip install -q --dry-run --report "$WORK/report.json" \
      "$WHEEL" &&
    "$DEV_PY" "$ROOT/scripts/packaging_tools.py" dry-run "$WORK/report.json" \
      "$WORK/freeze-0.txt" &&
    quiet_pip "$VPY" -m pip install -q "$WHEEL" &&
    freeze "$WORK/freeze-1.txt" &&
    "$DEV_PY" "$ROOT/scripts/packaging_tools.py" freeze-diff \
      "$WORK/freeze-0.txt" "$WORK/freeze-1.txt" --new mmcam_ext
}

installed_import() {
  # The package imports without grad-cam, from site-packages, with its
  # configs and tools in .mim (not the clone's).
  (cd "$RUN" && "$VPY" - <<'EOF'
import importlib.util, sys
import mmcam_ext
from mmcam_ext.utils.config import config_path, list_configs, tool_path
assert 'site-packages' in mmcam_ext.__file__, mmcam_ext.__file__
assert importlib.util.find_spec('pytorch_grad_cam') is None
assert 'demo/efficientnet_lite0_timm_in1k.py' in list_configs()
assert config_path('demo_cam.py').startswith(mmcam_ext.__path__[0])
tool_path('vis_cam'), tool_path('demo')
print('user:', mmcam_ext.__file__, len(list_configs()), 'configs')
EOF
  ) && (cd "$RUN" && "$VPY" -m mmcam_ext config demo_cam.py)
}

demo_config_path() {
  "$VPY" -m mmcam_ext config demo/efficientnet_lite0_timm_in1k.py \
    > "$WORK/demo.cfg" && grep -q "$VENV/.*/site-packages/mmcam_ext/.mim/" \
    "$WORK/demo.cfg" && cat "$WORK/demo.cfg"
}

# ------------------------------------------------- 4 demo, CLIs, configs
install_demo() {
  quiet_pip "$VPY" -m pip install -q -c "$LOCK" "$WHEEL[demo]" &&
    freeze "$WORK/freeze-2.txt" &&
    "$DEV_PY" "$ROOT/scripts/packaging_tools.py" freeze-diff \
      "$WORK/freeze-1.txt" "$WORK/freeze-2.txt" --any-new
}

demo_run() {
  (cd "$RUN" && "$VENV/bin/mmcam-demo" --work-dir demo --method gradcam) &&
    ls "$RUN"/demo/cams-*/chelsea*.png >/dev/null
}

vis_cam_run() {  # vis_cam_run OUT_DIR COMMAND...: one photo, one method
  local out="$1"
  shift
  (cd "$RUN" && "$@" demo/images/chelsea.png "$(cat "$WORK/demo.cfg")" \
    demo/efficientnet_lite0_timm_in1k.pth --method gradcam --out-dir "$out") &&
    ls "$RUN/$out"/*.png >/dev/null
}

same_outputs() {  # the same grid, whichever way the tool was started
  local first="$1"
  shift
  for other in "$@"; do
    cmp "$(ls "$RUN/$first"/*.png)" "$(ls "$RUN/$other"/*.png)" || return 1
  done
}

library_method_refused() {
  (cd "$RUN" && ! "$VENV/bin/mmcam-vis-cam" demo/images/chelsea.png \
    "$(cat "$WORK/demo.cfg")" demo/efficientnet_lite0_timm_in1k.pth \
    --method ablationcam --out-dir refused 2>"$WORK/refused.err") &&
    grep -F 'pip install "grad-cam>=1.4,<1.6"' "$WORK/refused.err"
}

custom_imports() {
  cat > "$RUN/my_cam_config.py" <<EOF
# A user's config: the demo model by absolute path (MMEngine refuses
# 'mmcam_ext::...'), the plugin through custom_imports.
_base_ = ['$(cat "$WORK/demo.cfg")']
custom_imports = dict(imports=['mmcam_ext'], allow_failed_imports=False)
custom_hooks = [dict(type='CAMVisualizationHook', methods=['gradcam'])]
EOF
  (cd "$RUN" && "$VPY" - <<'EOF'
import sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
cfg = Config.fromfile('my_cam_config.py')  # imports custom_imports
assert 'mmcam_ext' in sys.modules
init_default_scope(cfg.default_scope)
from mmpretrain.registry import HOOKS
hook = HOOKS.build(cfg.custom_hooks[0])
assert type(hook).__name__ == 'CAMVisualizationHook', hook
from mmcam_ext import config_path
plugin = Config.fromfile(config_path('resnet50_cam.py'))  # mmpretrain::
assert plugin.custom_hooks[0]['type'] == 'CAMVisualizationHook'
print('user: custom_imports config built', type(hook).__name__)
EOF
  )
}

tests_outside_clone() {  # tests_outside_clone FILE...: the installed package
  rm -rf "$WORK/tests-run" && mkdir -p "$WORK/tests-run" &&
    cp -r "$ROOT/tests" "$ROOT/pytest.ini" "$WORK/tests-run/" &&
    (cd "$WORK/tests-run" && OMP_NUM_THREADS=1 "$VPY" -m pytest -q \
      -p no:cacheprovider "$@")
}

patterns_tools() {  # the analysis extra; mmcam-patterns + mmcam-mine on dumps
  quiet_pip "$VPY" -m pip install -q -c "$LOCK" "$WHEEL[analysis]" &&
    rm -rf "$RUN/pat" && mkdir -p "$RUN/pat" &&
    (cd "$WORK/tests-run" && "$VPY" -c "from pathlib import Path
from tests.helpers.fake_dump import make_dump
make_dump(Path('$RUN/pat/run'))
make_dump(Path('$RUN/pat/pool'), groups=(20, 20, 20), correct=40)") &&
    (cd "$RUN" && "$VENV/bin/mmcam-patterns" pat/run --classes cat &&
      "$VENV/bin/mmcam-mine" pat/run/patterns pat/pool --label 0 \
        --per-pattern 5) &&
    "$VPY" - "$RUN/pat/run/patterns" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
pats = json.loads((out / 'patterns.json').read_text())['patterns']
neg = json.loads((out / 'mined/negatives.json').read_text())['patterns']
assert len(pats) == 3 and all(p['size'] == 12 for p in pats), pats
assert [len(p['images']) for p in neg] == [5, 5, 5], neg
assert (out / 'patterns.html').is_file()
assert (out / 'mined/mined.html').is_file()
print('user: 3 patterns, 5 mined negatives each, from the installed scripts')
EOF
}

# ------------------------------------------------------------- 5 the sdist
install_sdist() {
  quiet_pip "$VPY" -m pip uninstall -q -y mmcam_ext &&
    freeze "$WORK/freeze-3.txt" &&
    quiet_pip "$VPY" -m pip install -q "$SDIST" &&
    freeze "$WORK/freeze-4.txt" &&
    "$DEV_PY" "$ROOT/scripts/packaging_tools.py" freeze-diff \
      "$WORK/freeze-3.txt" "$WORK/freeze-4.txt" --new mmcam_ext
}

# ------------------------------------------------------- 6 grad-cam 1.4.8
install_grad_cam_148() {
  grep -v '^grad-cam==' "$LOCK" > "$WORK/lock-gc148.txt" &&
    freeze "$WORK/freeze-5.txt" &&
    quiet_pip "$VPY" -m pip install -q -c "$WORK/lock-gc148.txt" \
      grad-cam==1.4.8 &&
    freeze "$WORK/freeze-6.txt" &&
    "$DEV_PY" "$ROOT/scripts/packaging_tools.py" freeze-diff \
      "$WORK/freeze-5.txt" "$WORK/freeze-6.txt" --any-new
}

# ------------------------------------------------------------------ 7 mim
install_mim() {
  # openmim's own dependencies (opendatalab -> openxlab) pin old setuptools
  # and requests; `mim run` needs only these.
  quiet_pip "$VPY" -m pip install -q -c "$LOCK" --no-deps openmim &&
    quiet_pip "$VPY" -m pip install -q -c "$LOCK" click colorama model-index \
      pandas requests rich tabulate
}

# ------------------------------------------------- 8 editable, stock venv
editable_installs() {
  local bare="$WORK/bare-venv" src="$WORK/src-editable"
  "$DEV_PY" "$ROOT/scripts/packaging_tools.py" export "$ROOT" "$src" &&
    "$PYTHON" -m venv "$bare" &&
    # a stock venv's setuptools (65.5 on Python 3.11) cannot build wheels;
    # Python >= 3.12 venvs have none: give them that old one.
    { "$bare/bin/python" -c 'import setuptools' 2>/dev/null ||
      quiet_pip "$bare/bin/python" -m pip install -q 'setuptools==65.5.0'; } &&
    ! quiet_pip "$bare/bin/python" -m pip install --no-deps \
      --no-build-isolation -e "$src" > "$WORK/editable-old.log" &&
    grep -F 'setuptools>=70.1' "$WORK/editable-old.log" &&
    quiet_pip "$bare/bin/python" -m pip install -q --no-deps -e "$src" &&
    [ "$(readlink "$src/mmcam_ext/.mim/configs")" = ../../configs ] &&
    [ -f "$src/mmcam_ext/.mim/tools/vis_cam.py" ] &&
    quiet_pip "$bare/bin/python" -m pip uninstall -q -y mmcam_ext &&
    quiet_pip "$bare/bin/python" -m pip install -q -c "$LOCK" setuptools &&
    quiet_pip "$bare/bin/python" -m pip install -q --no-deps \
      --no-build-isolation -e "$src" &&
    (cd "$RUN" && "$bare/bin/python" -c "import importlib.util as u; \
      o = u.find_spec('mmcam_ext').origin; assert o.startswith('$src'), o; \
      print('user: editable from', o)")
}

mkdir -p "$RUN"
cd "$RUN"  # never the clone: `python -m` and `-c` import from the cwd first
echo "packaging: work folder $WORK"
check "build sdist, wheel from it (isolated)" build
WHEEL="$(cat "$WORK/wheel.path" 2>/dev/null)"
SDIST="$(cat "$WORK/sdist.path" 2>/dev/null)"
if [ -z "$WHEEL" ] || [ -z "$SDIST" ]; then
  echo "packaging: 0 passed, 1 failed (no wheel built)"
  exit 1
fi
check "fresh venv with a user's MMPretrain stack" user_stack
check "wheel changes nothing installed, adds only mmcam_ext" install_wheel
check "pip check" "$VPY" -m pip check
check "one cv2, PNG encode/decode" "$VPY" "$ROOT/scripts/check_opencv.py"
check "import + configs/tools from site-packages" installed_import
check "python -m mmcam_ext config: the installed demo config" \
  demo_config_path
check "demo extras: only additions" install_demo
check "pip check (demo extras)" "$VPY" -m pip check
check "one cv2 (demo extras)" "$VPY" "$ROOT/scripts/check_opencv.py"
check "mmcam-demo outside the clone" demo_run
check "mmcam-vis-cam" vis_cam_run cams-script "$VENV/bin/mmcam-vis-cam"
check "python -m mmcam_ext vis_cam" vis_cam_run cams-module "$VPY" -m \
  mmcam_ext vis_cam
check "library method refused without grad-cam" library_method_refused
check "config with custom_imports, hook built" custom_imports
quiet_pip "$VPY" -m pip install -q -c "$LOCK" pytest >/dev/null
check "no-grad-cam tests (installed wheel)" tests_outside_clone \
  tests/test_methods/test_grad_cam_lib.py
check "mmcam-patterns, mmcam-mine ([analysis] extra, installed wheel)" \
  patterns_tools
check "install from the sdist" install_sdist
check "mmcam-vis-cam (from the sdist)" vis_cam_run cams-sdist \
  "$VENV/bin/mmcam-vis-cam"
check "grad-cam 1.4.8: only additions" install_grad_cam_148
check "pip check (grad-cam 1.4.8)" "$VPY" -m pip check
check "one cv2 (grad-cam 1.4.8)" "$VPY" "$ROOT/scripts/check_opencv.py"
check "engine + library-method tests on grad-cam 1.4.8" tests_outside_clone \
  tests/test_apis/test_cam_engine.py tests/test_methods/test_score_cam.py \
  tests/test_methods/test_grad_cam_lib.py
check "openmim (no deps) + what mim run imports" install_mim
check "mim run mmcam_ext vis_cam" vis_cam_run cams-mim "$VENV/bin/mim" run \
  mmcam_ext vis_cam
check "same grid from all four entry points" same_outputs cams-script \
  cams-module cams-sdist cams-mim
check "pip install -e, with and without build isolation" editable_installs
echo "packaging: $((SECONDS - START)) s in all"
echo "packaging: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
