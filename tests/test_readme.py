"""Every repository file the README cites (as evidence or to run) exists.

The "What works" table names the test that backs each row; a renamed test
file must not leave a row pointing at nothing.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = (
    'tests',
    'mmcam_ext',
    'tools',
    'configs',
    'scripts',
    'docs',
    'benchmarks',
    'requirements',
)
# MMPretrain's own tools, which the README tells users to run.
UPSTREAM = {
    'tools/train.py',
    'tools/test.py',
    'tools/visualization/vis_cam.py',
}


def _cited_paths(text: str):
    pattern = r'`((?:%s)/[^`\s]*)`' % '|'.join(ROOMS)
    for path in re.findall(pattern, text):
        path = path.split('::')[0].rstrip('/')
        if any(c in path for c in '*<{') or path in UPSTREAM:
            continue  # patterns, placeholders, upstream files
        if path.startswith('mmcam_ext/.mim'):
            continue  # made by the build
        yield path


def test_readme_cites_only_existing_files():
    for doc in ('README.md', 'docs/resolvers.md', 'docs/benchmark.md'):
        text = (ROOT / doc).read_text()
        missing = sorted(
            {p for p in _cited_paths(text) if not (ROOT / p).exists()}
        )
        assert not missing, f'{doc} cites missing files: {missing}'
