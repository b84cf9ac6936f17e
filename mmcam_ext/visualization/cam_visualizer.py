"""Draw CAMs: heat-map overlays, signed maps and a labelled multi-method grid.

One visualizer serves the validation hook and ``tools/vis_cam.py``, so a CAM
looks the same wherever it was made. Everything here works on **RGB** uint8
images (MMEngine's convention for visualizers and vis backends); MMPretrain's
raw ``data_batch['inputs']`` and ``mmcv.imread`` give BGR, so convert them with
:func:`to_rgb` first.
"""

import functools
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import matplotlib
import mmcv
import numpy as np
from mmpretrain.visualization import UniversalVisualizer

from ..registry import VISUALIZERS
from ..utils.image import CHANNEL_ORDERS, class_text, to_rgb

__all__ = ['CAMVisualizer', 'to_rgb', 'draw_cam_rows', 'CHANNEL_ORDERS']

# A diverging colormap is needed for signed maps; 'jet' (the default for
# [0, 1] maps) has no neutral centre, so it is swapped for this one.
DEFAULT_SIGNED_COLORMAP = 'RdBu_r'
# Panels smaller than this (short side, px) are upscaled: titles stay legible.
MIN_PANEL_SIDE = 224
FONT = cv2.FONT_HERSHEY_SIMPLEX


@functools.lru_cache(maxsize=16)
def _colormap_lut(colormap: str) -> Tuple[np.ndarray, int]:
    """The colormap's table of RGB rows in ``[0, 1]`` and its size."""
    try:
        cmap = matplotlib.colormaps[colormap]
    except KeyError:
        raise ValueError(
            f'Unknown colormap {colormap!r}; use a matplotlib '
            "name such as 'jet', 'viridis' or 'RdBu_r'."
        ) from None
    lut = cmap(np.arange(cmap.N))[:, :3]
    lut.setflags(write=False)
    return lut, cmap.N


def _colorize(values: np.ndarray, colormap: str) -> np.ndarray:
    """Map values in ``[0, 1]`` to ``HxWx3`` float RGB in ``[0, 1]``.

    The same colours as calling the matplotlib colormap on the clipped
    values (``floor(x * N)``, 1.0 in the last entry), read from its table
    directly: a few times faster than the colormap's own call.
    """
    lut, size = _colormap_lut(colormap)
    index = (np.clip(values, 0.0, 1.0) * size).astype(np.intp)
    np.minimum(index, size - 1, out=index)
    return lut[index]


def _fit_text(text: str, width: int, scale: float) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    while text and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-2] + '~' if len(text) > 2 else ''
    return text


def _text_strip(lines: Sequence[str], width: int, scale: float) -> np.ndarray:
    """White text on a dark strip, one row per line, as RGB uint8."""
    line_h = int(round(28 * scale)) + 6
    strip = np.full((line_h * len(lines) + 4, width, 3), 32, np.uint8)
    for i, line in enumerate(lines):
        text = _fit_text(line, width - 8, scale)
        cv2.putText(
            strip,
            text,
            (4, line_h * (i + 1) - 6),
            FONT,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    return strip


@VISUALIZERS.register_module()
class CAMVisualizer(UniversalVisualizer):
    """Visualizer for class-activation maps.

    A thin layer over MMPretrain's :class:`UniversalVisualizer`: it keeps its
    vis-backend plumbing (``add_image`` reaches Local, TensorBoard, W&B ...)
    and adds CAM overlays. Build it like any MMEngine visualizer, e.g.
    ``visualizer = dict(type='CAMVisualizer', vis_backends=[...])``.
    """

    @staticmethod
    def overlay(
        image: np.ndarray,
        cam: np.ndarray,
        alpha: float = 0.5,
        colormap: str = 'jet',
        signed: bool = False,
    ) -> np.ndarray:
        """Blend a CAM over an image.

        Args:
            image (np.ndarray): ``HxWx3`` uint8 RGB image.
            cam (np.ndarray): ``hxw`` float map, in ``[0, 1]`` (values
                outside are clipped), or signed when ``signed=True``.
                Resized (bilinear) to the image if the shapes differ.
            alpha (float): Weight of the heat map; ``1 - alpha`` for the
                image. Defaults to 0.5.
            colormap (str): Matplotlib colormap name. With ``signed=True``
                the default ``'jet'`` is replaced by the diverging
                ``'RdBu_r'``. Defaults to ``'jet'``.
            signed (bool): Show a signed map with a diverging colormap
                centred on 0 over the symmetric range
                ``[-max|cam|, max|cam|]``. The blend weight grows with
                ``sqrt|cam|`` so that zero leaves the image untouched: only
                evidence for (red) or against (blue) the class is coloured.
                Defaults to False.

        Returns:
            np.ndarray: ``HxWx3`` uint8 RGB image.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f'image must be HxWx3 RGB, got {image.shape}.')
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must be in [0, 1], got {alpha}.')
        cam = np.nan_to_num(np.asarray(cam, np.float32).squeeze())
        if cam.ndim != 2:
            raise ValueError(f'cam must be a 2-D map, got shape {cam.shape}.')
        if cam.shape != image.shape[:2]:
            cam = cv2.resize(
                cam,
                (image.shape[1], image.shape[0]),
                interpolation=cv2.INTER_LINEAR,
            )
        img = image.astype(np.float32) / 255.0
        if signed:
            if colormap == 'jet':
                colormap = DEFAULT_SIGNED_COLORMAP
            scale = float(np.abs(cam).max())
            unit = cam / scale if scale > 0 else np.zeros_like(cam)
            heat = _colorize((unit + 1.0) / 2.0, colormap)
            # sqrt: weak evidence stays visible; zero still leaves the image.
            weight = (alpha * np.sqrt(np.abs(unit)))[..., None]
        else:
            heat = _colorize(cam, colormap)
            weight = alpha
        out = (1.0 - weight) * img + weight * heat
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)

    def draw_cam(
        self,
        image: np.ndarray,
        cams: Dict[str, np.ndarray],
        *,
        signed: bool = False,
        gt_label: Optional[int] = None,
        pred_label: Optional[int] = None,
        pred_score: Optional[float] = None,
        target_label: Optional[int] = None,
        target_score: Optional[float] = None,
        classes: Optional[Sequence[str]] = None,
        alpha: float = 0.5,
        colormap: str = 'jet',
        name: str = 'cam',
        step: int = 0,
        show: bool = False,
        out_file: Optional[str] = None,
        add_to_backends: bool = True,
    ) -> np.ndarray:
        """Draw the original image and one overlay panel per method.

        Args:
            image (np.ndarray): ``HxWx3`` uint8 RGB image the maps align
                with.
            cams (dict[str, np.ndarray]): ``{method name: hxw map}``, drawn
                left to right.
            signed (bool): Maps are signed (see :meth:`overlay`). Defaults
                to False.
            gt_label (int, optional): Ground-truth class, shown in the
                header. Defaults to None.
            pred_label (int, optional): Predicted class, shown in the
                header. Defaults to None.
            pred_score (float, optional): Score of the prediction, shown in
                the header. Defaults to None.
            target_label (int, optional): Class the maps explain, shown on
                each panel. Defaults to None.
            target_score (float, optional): Score of ``target_label``;
                shown on each panel. Defaults to None (``pred_score`` when
                the target is the prediction).
            classes (Sequence[str], optional): Class names; indices are
                shown when ``None``. Defaults to None.
            alpha (float): Heat-map weight of the overlays. Defaults to 0.5.
            colormap (str): Matplotlib colormap name. Defaults to ``'jet'``.
            name (str): Image identifier for the vis backends. Defaults to
                ``'cam'``.
            step (int): Global step (epoch or iteration) for the vis
                backends. Defaults to 0.
            show (bool): Display the grid in a window. Defaults to False.
            out_file (str, optional): Also write the grid to this file (PNG
                by extension). Defaults to None.
            add_to_backends (bool): Send the grid to every vis backend.
                Defaults to True.

        Returns:
            np.ndarray: The grid as ``H'xW'x3`` uint8 RGB.
        """
        if not cams:
            raise ValueError('cams is empty: give at least one method map.')
        image = to_rgb(image, 'rgb')
        image = self._display_size(image)
        if (
            target_score is None
            and target_label is not None
            and target_label == pred_label
        ):
            target_score = pred_score
        scale = max(0.4, min(0.8, image.shape[1] / 400.0))
        panels = [self._panel(image, ['input', ''], scale)]
        label = class_text(target_label, classes)
        score = '' if target_score is None else f' {target_score:.3f}'
        for method, cam in cams.items():
            ovl = self.overlay(image, cam, alpha, colormap, signed)
            panels.append(self._panel(ovl, [method, label + score], scale))
        grid = np.concatenate(panels, axis=1)
        header = self._header(gt_label, pred_label, pred_score, classes)
        grid = np.concatenate(
            [_text_strip([header], grid.shape[1], scale), grid], axis=0
        )
        self._emit(grid, name, step, show, out_file, add_to_backends)
        return grid

    # ------------------------------------------------------------------
    @staticmethod
    def _display_size(image: np.ndarray) -> np.ndarray:
        """Upscale small images so that the panel titles are readable."""
        short = min(image.shape[:2])
        if short >= MIN_PANEL_SIDE:
            return image
        factor = MIN_PANEL_SIDE / short
        size = (
            int(round(image.shape[1] * factor)),
            int(round(image.shape[0] * factor)),
        )
        return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)

    @staticmethod
    def _panel(img: np.ndarray, lines: List[str], scale: float) -> np.ndarray:
        strip = _text_strip(lines, img.shape[1], scale)
        border = np.full((strip.shape[0] + img.shape[0], 2, 3), 255, np.uint8)
        return np.concatenate(
            [np.concatenate([strip, img], axis=0), border], axis=1
        )

    def _header(self, gt_label, pred_label, pred_score, classes) -> str:
        parts = []
        if gt_label is not None:
            parts.append('gt: ' + class_text(gt_label, classes))
        if pred_label is not None:
            score = '' if pred_score is None else f' {pred_score:.3f}'
            parts.append('pred: ' + class_text(pred_label, classes) + score)
        return '   '.join(parts) or 'CAM'

    def _emit(
        self,
        grid: np.ndarray,
        name: str,
        step: int,
        show: bool,
        out_file: Optional[str],
        add_to_backends: bool,
    ) -> None:
        """The one show/save/backend tail shared by all drawing methods."""
        if add_to_backends:
            self.add_image(name, grid, step)
        if out_file is not None:
            # mmcv.imwrite (cv2) expects BGR.
            if not mmcv.imwrite(grid[..., ::-1], str(out_file)):
                raise OSError(f'Could not write {out_file}.')
        if show:
            self.show(grid, win_name=name)


def draw_cam_rows(
    visualizer: CAMVisualizer,
    image: np.ndarray,
    maps: Dict[str, np.ndarray],
    targets: Sequence[int],
    target_scores: Sequence[float],
    **kwargs,
) -> np.ndarray:
    """One :meth:`CAMVisualizer.draw_cam` row per explained class, stacked.

    Used for ``topk > 1`` or several target categories, so that each image
    still gives one picture.

    Args:
        visualizer (CAMVisualizer): The visualizer that draws each row.
        image (np.ndarray): ``HxWx3`` uint8 RGB image.
        maps (dict[str, np.ndarray]): ``{method: (K, h, w)}`` maps.
        targets (Sequence[int]): ``K`` explained classes.
        target_scores (Sequence[float]): ``K`` scores of those classes.
        **kwargs: Passed to ``draw_cam`` (``pred_label``, ``classes`` ...);
            ``out_file`` and backends apply to the stacked picture only.

    Returns:
        np.ndarray: The stacked picture, ``K`` rows.
    """
    out_file = kwargs.pop('out_file', None)
    add_to_backends = kwargs.pop('add_to_backends', False)
    rows = []
    for k, (label, score) in enumerate(zip(targets, target_scores)):
        cams = {m: v[k] for m, v in maps.items()}
        rows.append(
            visualizer.draw_cam(
                image,
                cams,
                target_label=int(label),
                target_score=float(score),
                add_to_backends=False,
                **kwargs,
            )
        )
    picture = np.concatenate(rows, axis=0)
    visualizer._emit(
        picture,
        kwargs.get('name', 'cam'),
        kwargs.get('step', 0),
        False,
        out_file,
        add_to_backends,
    )
    return picture
