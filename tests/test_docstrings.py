"""Docstrings of the package in OpenMMLab's form, and ``__all__`` honest.

Read from the source (AST), so a new public function without a docstring,
an ``Args:`` entry without its type, or a documented argument the function
no longer takes (a stale or dead parameter) fails here:

* every public module-level class and function, and every public method of
  a public class, has a docstring. A method that overrides a documented
  method of the package (a method's ``weighted``/``explain``, a resolver's
  ``resolve``) or an MMEngine ``Hook`` callback may rely on the docstring of
  what it overrides;
* in an ``Args:`` section every entry reads ``name (type): ...``, and each
  ``name`` is a parameter of that function (or an attribute of that
  dataclass);
* each module's ``__all__`` names only what the module defines, without
  repeats, and a package ``__init__`` exports what it imports from its
  own modules.
"""

import ast
import importlib
import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'mmcam_ext'
#: ``name (type): text`` -- OpenMMLab's argument form; ``*args``/``**kwargs``
#: carry no type.
ARG_LINE = re.compile(r'^(?P<name>\*{0,2}\w+)(?P<type> \([^)]*\)?.*?)?:(\s|$)')
SECTIONS = (
    'Args:',
    'Returns:',
    'Yields:',
    'Raises:',
    'Attributes:',
    'Examples:',
    'Example:',
    'Note:',
    'Notes:',
    'Warning:',
)


def _modules() -> List[Path]:
    return sorted(p for p in PACKAGE.rglob('*.py') if '.mim' not in p.parts)


def _trees() -> Dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), str(p)) for p in _modules()}


TREES = _trees()


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _public(name: str) -> bool:
    return not name.startswith('_')


def _classes() -> Dict[str, ast.ClassDef]:
    return {
        node.name: node
        for tree in TREES.values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


CLASSES = _classes()


def _base_documents(cls: ast.ClassDef, method: str) -> bool:
    """Whether a base class of ``cls`` in the package documents ``method``."""
    for base in cls.bases:
        name = getattr(base, 'id', None) or getattr(base, 'attr', None)
        parent = CLASSES.get(name)
        if parent is None or parent is cls:
            continue
        for node in parent.body:
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name == method
                and ast.get_docstring(node)
            ):
                return True
        if _base_documents(parent, method):
            return True
    return False


def _hook_callbacks() -> Set[str]:
    from mmengine.hooks import Hook

    return {n for n in vars(Hook) if n.startswith(('before_', 'after_'))}


def _public_defs() -> Iterator[Tuple[str, ast.AST, Optional[ast.ClassDef]]]:
    """``(where, node, owner)``: every public class, function and method.

    ``owner`` is the class of a method, ``None`` otherwise.
    """
    for path, tree in TREES.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _public(node.name):
                    yield (
                        f'{_rel(path)}:{node.lineno} {node.name}',
                        node,
                        None,
                    )
            elif isinstance(node, ast.ClassDef) and _public(node.name):
                yield f'{_rel(path)}:{node.lineno} {node.name}', node, None
                for sub in node.body:
                    if isinstance(
                        sub, (ast.FunctionDef, ast.AsyncFunctionDef)
                    ) and _public(sub.name):
                        where = (
                            f'{_rel(path)}:{sub.lineno} {node.name}.{sub.name}'
                        )
                        yield where, sub, node


def test_every_public_definition_has_a_docstring():
    callbacks = _hook_callbacks()
    missing = [
        where
        for where, node, owner in _public_defs()
        if not ast.get_docstring(node)
        and not (
            owner is not None
            and (node.name in callbacks or _base_documents(owner, node.name))
        )
    ]
    assert not missing, 'no docstring:\n' + '\n'.join(missing)


def _args_entries(doc: str) -> List[str]:
    """The first line of each entry of the ``Args:`` section."""
    lines = doc.splitlines()
    try:
        start = next(i for i, ln in enumerate(lines) if ln.strip() == 'Args:')
    except StopIteration:
        return []
    indent = len(lines[start]) - len(lines[start].lstrip())
    entries, entry_indent = [], None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if depth <= indent or line.strip() in SECTIONS:
            break
        if entry_indent is None:
            entry_indent = depth
        if depth == entry_indent:
            entries.append(line.strip())
    return entries


def _parameters(node: ast.AST) -> Set[str]:
    if isinstance(node, ast.ClassDef):
        names = {
            t.target.id
            for t in node.body
            if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)
        }
        init = [
            n
            for n in node.body
            if isinstance(n, ast.FunctionDef) and n.name == '__init__'
        ]
        return names | (_parameters(init[0]) if init else set())
    args = node.args
    names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
    if args.vararg:
        names.add('*' + args.vararg.arg)
    if args.kwarg:
        names.add('**' + args.kwarg.arg)
    return names


def _all_documented() -> Iterator[Tuple[str, ast.AST]]:
    for path, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                doc = ast.get_docstring(node)
                if doc and 'Args:' in doc:
                    yield f'{_rel(path)}:{node.lineno} {node.name}', node


def test_args_sections_give_name_type_and_match_the_signature():
    problems = []
    for where, node in _all_documented():
        params = _parameters(node)
        for entry in _args_entries(ast.get_docstring(node)):
            match = ARG_LINE.match(entry)
            if not match:
                problems.append(f'{where}: not `name (type): ...`: {entry!r}')
                continue
            name = match['name']
            if not name.startswith('*') and not match['type']:
                problems.append(f'{where}: {name} has no (type)')
            if params and name not in params:
                problems.append(f'{where}: documents {name}, takes {params}')
    assert not problems, '\n'.join(problems)


def _dotted(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix('')
    parts = list(rel.parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


@pytest.mark.parametrize(
    'path',
    [p for p in _modules() if p.name != '__main__.py'],
    ids=lambda p: _rel(p),
)
def test_all_names_what_the_module_holds(path):
    tree = TREES[path]
    declared = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(getattr(t, 'id', None) == '__all__' for t in node.targets)
    ]
    if not declared:
        return
    names = ast.literal_eval(declared[0].value)
    assert len(names) == len(set(names)), f'repeats in __all__: {names}'
    module = importlib.import_module(_dotted(path))
    absent = [n for n in names if not hasattr(module, n)]
    assert not absent, f'__all__ names what is not there: {absent}'
    if path.name == '__init__.py':
        imported = {
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 1
            for alias in node.names
            if _public(alias.asname or alias.name)
        }
        submodules = {
            p.stem for p in path.parent.iterdir() if p.suffix == '.py'
        } | {p.name for p in path.parent.iterdir() if p.is_dir()}
        not_exported = sorted(imported - set(names) - submodules)
        assert not not_exported, f'imported, not in __all__: {not_exported}'
