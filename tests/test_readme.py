"""Every repository file the README and the docs cite (as evidence or to
run) exists, and every relative link lands on a file and heading.

The "What works" table names the test that backs each row; a renamed test
file must not leave a row pointing at nothing. The README stays a short
front page: the details live in docs/.
"""

import re
from pathlib import Path

import pytest

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
DOCS = ['README.md'] + sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / 'docs').rglob('*.md')
)
README_MAX_LINES = 250


def _cited_paths(text: str):
    pattern = r'`((?:%s)/[^`\s]*)`' % '|'.join(ROOMS)
    for path in re.findall(pattern, text):
        path = path.split('::')[0].rstrip('/')
        if any(c in path for c in '*<{') or path in UPSTREAM:
            continue  # patterns, placeholders, upstream files
        if path.startswith('mmcam_ext/.mim'):
            continue  # made by the build
        yield path


def _prose(text: str) -> str:
    """The Markdown without its fenced code blocks."""
    return re.sub(r'^```.*?^```', '', text, flags=re.M | re.S)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped,
    spaces to dashes."""
    text = heading.strip().lower().replace('`', '')
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def _anchors(path: Path):
    return {
        _anchor(h)
        for h in re.findall(r'^#+ (.*)$', _prose(path.read_text()), re.M)
    }


def test_docs_are_found():
    assert 'docs/index.md' in DOCS
    assert 'docs/advanced_guides/add_cam_method.md' in DOCS


@pytest.mark.parametrize('doc', DOCS)
def test_cites_only_existing_files(doc):
    text = (ROOT / doc).read_text()
    missing = sorted(
        {p for p in _cited_paths(text) if not (ROOT / p).exists()}
    )
    assert not missing, f'{doc} cites missing files: {missing}'


@pytest.mark.parametrize('doc', DOCS)
def test_relative_links_land(doc):
    source = ROOT / doc
    broken = []
    for target in re.findall(r'\]\(([^)\s]+)\)', _prose(source.read_text())):
        if re.match(r'[a-z]+:', target):
            continue  # http(s), mailto
        file, _, anchor = target.partition('#')
        dest = (source.parent / file).resolve() if file else source
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == '.md' and anchor not in _anchors(dest):
            broken.append(target)
    assert not broken, f'{doc} has broken links: {broken}'


def test_readme_is_a_short_front_page():
    text = (ROOT / 'README.md').read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    # The quick start keeps its two commands; the details are linked.
    assert re.search(r'^make demo ', text, re.M)
    assert re.search(r'^make test ', text, re.M)
    assert '(docs/index.md)' in text
    assert '(docs/benchmark.md)' in text


@pytest.mark.parametrize('doc', DOCS)
def test_no_tracker_references_or_dated_run_notes(doc):
    text = (ROOT / doc).read_text()
    assert not re.findall(r'\b[Ii]ssue[ -]?#?\d+', text), doc
    assert not re.findall(r'\b20\d\d-\d\d-\d\d\b', text), doc
