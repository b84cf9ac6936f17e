"""CAM methods, registered in ``CAM_METHODS`` and built from names or
config dicts (``build_method``, ``CAM_METHODS.build``)."""

from ..utils.maps import eigen_projection
from .attention import AttentionRelevance, AttentionRollout, GradAttention
from .base import BaseCAMMethod, ExplainContext, FullMapMethod, LayerMapMethod
from .builder import (
    build_method,
    method_class,
    method_configs,
    method_names,
    normalize_name,
)
from .grad_cam_lib import (
    FEM,
    KPCACAM,
    AblationCAM,
    FinerCAM,
    FullGrad,
    LibScoreCAM,
    RandomCAM,
    SegEigenCAM,
    ShapleyCAM,
)
from .gradient import (
    GRADIENT_METHODS,
    EigenCAM,
    EigenGradCAM,
    GradCAM,
    GradCAMElementWise,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    XGradCAM,
)
from .score_cam import ScoreCAM

__all__ = [
    'BaseCAMMethod',
    'ExplainContext',
    'FullMapMethod',
    'LayerMapMethod',
    'build_method',
    'eigen_projection',
    'method_class',
    'method_configs',
    'method_names',
    'normalize_name',
    'GRADIENT_METHODS',
    'GradCAM',
    'GradCAMPlusPlus',
    'XGradCAM',
    'HiResCAM',
    'GradCAMElementWise',
    'LayerCAM',
    'EigenCAM',
    'EigenGradCAM',
    'ScoreCAM',
    'LibScoreCAM',
    'AblationCAM',
    'FullGrad',
    'KPCACAM',
    'ShapleyCAM',
    'FinerCAM',
    'RandomCAM',
    'FEM',
    'SegEigenCAM',
    'AttentionRollout',
    'GradAttention',
    'AttentionRelevance',
]
