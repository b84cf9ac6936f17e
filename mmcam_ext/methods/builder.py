"""Method names and building from config dicts.

Methods are built the MMEngine way, from a config dict through the
``CAM_METHODS`` registry (:func:`build_method`,
``CAM_METHODS.build(dict(type='GradAttention', eps=1e-4))``): ``type`` is a
case-insensitive name or alias, the other keys are the options documented
in each method's constructor; a misspelt option fails with the valid ones.
:func:`build_cam_method` is the registry's build function. The command
line's ``method.option=value`` syntax is parsed in
:mod:`mmcam_ext.cli.method_options` into the dicts :func:`method_configs`
merges, so the tool and a config share these rules.
"""

import inspect
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Type, Union

from ..errors import MethodError
from ..registry import CAM_METHODS
from .base import BaseCAMMethod

__all__ = [
    'MethodLike',
    'build_method',
    'build_cam_method',
    'method_class',
    'method_configs',
    'method_names',
    'method_options',
    'check_options',
    'normalize_name',
]


def normalize_name(name: str) -> str:
    """Case- and punctuation-free key: ``'Grad-CAM++'`` -> ``gradcam++``."""
    return re.sub(r'[\s_\-]', '', name.lower())


#: What a method can be given as: a name, a config dict or a built method.
MethodLike = Union[str, Mapping[str, Any], BaseCAMMethod]


def _method_table() -> Dict[str, Type[BaseCAMMethod]]:
    """Explicit name table built from the registry (class name + aliases)."""
    import mmcam_ext.methods  # noqa: F401  (registers everything)

    table: Dict[str, Type[BaseCAMMethod]] = {}
    for key, cls in CAM_METHODS.module_dict.items():
        for name in (key, *getattr(cls, 'aliases', ())):
            table[normalize_name(name)] = cls
    return table


def method_names() -> List[str]:
    """Registered method names (canonical, as registered).

    Returns:
        list[str]: The names, sorted.
    """
    _method_table()
    return sorted(CAM_METHODS.module_dict)


def method_class(name: str) -> Type[BaseCAMMethod]:
    """The method class for a case-insensitive name or alias.

    Args:
        name (str): E.g. ``'gradcam++'``, ``'Grad-CAM'``, ``'rollout'``.

    Returns:
        type: The registered class.

    Raises:
        MethodError: Listing the available names.
    """
    cls = _method_table().get(normalize_name(str(name)))
    if cls is None and any(c in str(name) for c in ',;'):
        parts = [p.strip() for p in re.split(r'[,;]', str(name)) if p.strip()]
        raise MethodError(
            f'Unknown CAM method {name!r}: a comma does not separate '
            f'methods; give the {len(parts)} names ({" ".join(parts)}) '
            'each on its own.'
        )
    if cls is None:
        raise MethodError(
            f'Unknown CAM method {name!r}. Available: '
            f'{", ".join(method_names())} (names are case- and '
            'dash-insensitive; aliases such as gradcam++ work).'
        )
    return cls


def method_options(cls: Type[BaseCAMMethod]) -> Optional[List[str]]:
    """Constructor options of a method class (``None``: any keyword).

    Args:
        cls (type): A method class.

    Returns:
        list[str] | None: Option names, documented in the constructor.
    """
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    kinds = (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return [p.name for p in params if p.kind in kinds]


def check_options(cls: Type[BaseCAMMethod], options: Mapping) -> None:
    """Refuse options the method's constructor does not take.

    Args:
        cls (type): The method class.
        options (Mapping): Option names (values are not looked at).

    Raises:
        MethodError: Naming the unknown options and the valid ones.
    """
    valid = method_options(cls)
    unknown = sorted(set(options) - set(valid)) if valid is not None else []
    if unknown and not valid:
        raise MethodError(
            f'{cls.__name__} takes no options, got {", ".join(unknown)}.'
        )
    if unknown:
        raise MethodError(
            f'{cls.__name__} has no option(s) {", ".join(unknown)}; its '
            f'options are: {", ".join(valid or ())} (documented in '
            f'{cls.__name__}.__init__).'
        )


def build_cam_method(
    cfg: Mapping[str, Any],
    registry: Any = None,
    default_args: Optional[Mapping[str, Any]] = None,
) -> BaseCAMMethod:
    """The build function of ``CAM_METHODS``: a method from a config dict.

    ``type`` is a registered name, an alias (case- and dash-insensitive) or
    a class; every other key is a constructor option, checked against the
    constructor's signature so a misspelt option fails with the valid ones.

    Args:
        cfg (Mapping): E.g. ``dict(type='GradAttention', eps=1e-4)``.
        registry (Registry, optional): The registry (ignored: methods are
            looked up by name in ``CAM_METHODS``). Defaults to None.
        default_args (Mapping, optional): Options used where ``cfg`` has
            none. Defaults to None.

    Returns:
        BaseCAMMethod: The built method.

    Raises:
        MethodError: For a missing or unknown type, or unknown options.
    """
    options = {**(default_args or {}), **dict(cfg)}
    kind = options.pop('type', None)
    if isinstance(kind, type) and issubclass(kind, BaseCAMMethod):
        cls = kind
    elif isinstance(kind, str):
        cls = method_class(kind)
    else:
        raise MethodError(
            f'A CAM method config needs a type (a method name), got {cfg!r}.'
        )
    check_options(cls, options)
    return cls(**options)


def build_method(cfg: MethodLike, **options: Any) -> BaseCAMMethod:
    """Build a method from a name, a config dict or an instance.

    Args:
        cfg (str | dict | BaseCAMMethod): A case-insensitive name or alias
            (``'gradcam++'``), a config (``dict(type='rollout',
            head_fusion='max')``) or a built method (returned as is).
        **options: Constructor options, merged into a name or dict.

    Returns:
        BaseCAMMethod: The method.

    Raises:
        MethodError: For unknown names or options.
    """
    if isinstance(cfg, BaseCAMMethod):
        if options:
            raise MethodError(
                f'Options {sorted(options)} cannot be applied to the built '
                f'method {cfg.name}; pass a name or a config dict.'
            )
        return cfg
    if isinstance(cfg, str):
        return CAM_METHODS.build(dict(type=cfg, **options))
    if isinstance(cfg, Mapping):
        return CAM_METHODS.build({**cfg, **options})
    raise MethodError(
        'A CAM method is a name, a config dict or a built method, got '
        f'{type(cfg).__name__}.'
    )


def _class_name(kind: Any) -> str:
    """Registered class name of a config's ``type``; ``''`` if unknown (the
    build reports it)."""
    if isinstance(kind, type):
        return kind.__name__
    try:
        return method_class(str(kind)).__name__
    except MethodError:
        return ''


def method_configs(
    methods: Sequence[MethodLike],
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> List[MethodLike]:
    """Merge per-method options into configs (the command line's are parsed
    by :func:`mmcam_ext.cli.method_options.parse_method_options`).

    Args:
        methods (Sequence): Names, config dicts or built methods.
        options (Mapping, optional): ``{method name: {option: value}}``;
            method names as in :func:`method_class`. Defaults to None.

    Returns:
        list: One config dict per name/dict (built methods unchanged).

    Raises:
        MethodError: When options name a method not among ``methods``.
    """
    wanted = {
        method_class(k).__name__: dict(v) for k, v in (options or {}).items()
    }
    out: List[MethodLike] = []
    for method in methods:
        if not isinstance(method, (str, Mapping)):
            out.append(method)  # built methods (or odd values, refused later)
            continue
        cfg = dict(type=method) if isinstance(method, str) else dict(method)
        out.append({**cfg, **wanted.pop(_class_name(cfg.get('type')), {})})
    if wanted:
        raise MethodError(
            f'Options given for {", ".join(sorted(wanted))}, which is not '
            'among the methods to run.'
        )
    return out
