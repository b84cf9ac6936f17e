"""Thumbnail sheets: many small pictures in a few JPEG files.

A gallery of 10,000 samples cannot load 10,000 PNGs per page; it shows
tiles of a few sprite sheets instead (CSS ``background-position``). Each
sheet holds ``cols x rows`` square tiles; a tile is referenced as
``thumbs/<key>.<sheet>.jpg#<tile>``.
"""

from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

__all__ = [
    'ThumbSheets',
    'fit_tile',
    'parse_thumb',
    'THUMBS_DIR',
    'TILE_SIZE',
    'SHEET_COLS',
]

THUMBS_DIR = 'thumbs'
#: Tile side (px) and tiles per sheet row (the gallery's geometry).
TILE_SIZE, SHEET_COLS = 64, 32
BACKGROUND = 40


def fit_tile(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` shrunk to fit a ``size x size`` tile, centred on grey.

    Args:
        image (np.ndarray): ``HxWx3`` uint8 (any channel order).
        size (int): Tile side in pixels.

    Returns:
        np.ndarray: ``size x size x 3`` uint8.
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    tile = np.full((size, size, 3), BACKGROUND, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    tile[top : top + nh, left : left + nw] = small
    return tile


def parse_thumb(ref: str) -> Tuple[str, int]:
    """``'thumbs/x.0.jpg#37'`` -> ``('thumbs/x.0.jpg', 37)``."""
    file, _, tile = ref.partition('#')
    return file, int(tile or 0)


class ThumbSheets:
    """Sprite sheets of one dump folder (one process).

    :meth:`reserve` (caller's thread) says where a tile goes; :meth:`put`
    (worker thread) draws it; a full sheet is written at once, the partial
    ones by :meth:`close`.

    Args:
        folder (str | Path): The dump folder.
        size (int): Tile side. Defaults to :data:`TILE_SIZE`.
        cols (int): Tiles per sheet row. Defaults to :data:`SHEET_COLS`.
        rows (int): Tile rows per sheet. Defaults to 32.
        suffix (str): Inserted before the sheet number (``'.rank1'``).
            Defaults to ``''``.
    """

    def __init__(
        self,
        folder: Union[str, Path],
        size: int = TILE_SIZE,
        cols: int = SHEET_COLS,
        rows: int = 32,
        suffix: str = '',
    ) -> None:
        self.folder = Path(folder)
        self.size, self.cols, self.rows, self.suffix = size, cols, rows, suffix
        self._reserved: Dict[str, int] = {}
        self._sheets: Dict[str, np.ndarray] = {}
        self._filled: Dict[str, int] = {}
        self.written: List[str] = []

    @property
    def per_sheet(self) -> int:
        """Tiles per sheet, ``cols * rows``."""
        return self.cols * self.rows

    def reserve(self, key: str) -> str:
        """Reference of the next tile of sheet family ``key``."""
        n = self._reserved.get(key, 0)
        self._reserved[key] = n + 1
        sheet, tile = divmod(n, self.per_sheet)
        return f'{self._sheet_name(key, sheet)}#{tile}'

    def put(self, ref: str, picture: np.ndarray) -> None:
        """Draw ``picture`` (RGB) into the tile ``ref``; a full sheet is
        written at once."""
        file, tile = parse_thumb(ref)
        sheet = self._sheets.get(file)
        if sheet is None:
            sheet = np.full(
                (self.rows * self.size, self.cols * self.size, 3),
                BACKGROUND,
                np.uint8,
            )
            self._sheets[file] = sheet
        r, c = divmod(tile, self.cols)
        s = self.size
        sheet[r * s : (r + 1) * s, c * s : (c + 1) * s] = fit_tile(picture, s)
        self._filled[file] = max(self._filled.get(file, 0), tile + 1)
        if tile + 1 == self.per_sheet:
            self._write(file)

    def close(self) -> List[str]:
        """Write the partial sheets; every sheet written (relative)."""
        for file in list(self._sheets):
            self._write(file)
        return self.written

    def _sheet_name(self, key: str, number: int) -> str:
        return f'{THUMBS_DIR}/{key}{self.suffix}.{number}.jpg'

    def _write(self, file: str) -> None:
        sheet = self._sheets.pop(file)
        used = -(-self._filled.pop(file) // self.cols) * self.size
        path = self.folder / file
        path.parent.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(
            str(path),
            np.ascontiguousarray(sheet[:used, :, ::-1]),
            [cv2.IMWRITE_JPEG_QUALITY, 85],
        )
        if not ok:
            raise OSError(f'Could not write {path}.')
        self.written.append(file)
