"""The command line's ``method.option=value`` syntax.

``--method-options rollout.head_fusion=max scorecam.mask_batch_size=16``
becomes ``{'AttentionRollout': {'head_fusion': 'max'}, ...}``, which
:func:`mmcam_ext.methods.builder.method_configs` merges into the method
configs; names and options are checked by the same rules as a config dict.
"""

import ast
from typing import Any, Dict, Optional, Sequence

from ..errors import MethodError
from ..methods.builder import check_options, method_class

__all__ = ['parse_method_options']


def _option_value(text: str) -> Any:
    """``'16'`` -> 16, ``'0.9'`` -> 0.9, ``'true'`` -> True, else the text."""
    lowered = {'true': True, 'false': False, 'none': None, 'null': None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_method_options(
    items: Optional[Sequence[str]],
) -> Dict[str, Dict[str, Any]]:
    """Parse ``method.option=value`` strings (the CLI's option syntax).

    Args:
        items (Sequence[str], optional): E.g. ``['rollout.head_fusion=max',
            'scorecam.mask_batch_size=16']``; values are Python literals
            (numbers, ``true``/``false``/``none``, lists) or plain strings.

    Returns:
        dict: ``{MethodClassName: {option: value}}``, names resolved.

    Raises:
        MethodError: For malformed items, unknown methods or options.
    """
    parsed: Dict[str, Dict[str, Any]] = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        method, dot, option = key.strip().rpartition('.')
        if not sep or not dot or not method or not option:
            raise MethodError(
                f'Method option {item!r} is not of the form '
                'method.option=value (e.g. rollout.head_fusion=max).'
            )
        cls = method_class(method)
        check_options(cls, {option: None})
        parsed.setdefault(cls.__name__, {})[option] = _option_value(value)
    return parsed
