"""The exceptions mmcam_ext raises for problems a user can cause.

Every error of the library that a user can cause (a bad argument, a file that
cannot be read, a layer that does not exist, a map that would be wrong)
derives from :class:`MMCamError`, so callers can catch them all at once and
tell them apart from bugs. Each also derives from the built-in exception a
Python user would expect (``ValueError``, ``KeyError``...), so existing
``except ValueError`` code keeps working.

Messages name the option as the API spells it (``target_layers``, not a
command-line flag); ``mmcam_ext.cli`` translates them for its flags. An
error about one argument whose name is also a plain word (``methods``,
``targets``, ``device``) says so in :attr:`MMCamError.option`, so the
translation touches that word only in that error.
"""

import pickle
from typing import Optional

__all__ = [
    'MMCamError',
    'InputError',
    'ImageLoadError',
    'ConfigError',
    'ModelError',
    'LayerNotFoundError',
    'LayoutError',
    'MethodError',
    'TargetError',
    'NumericalError',
    'ResourceLimitError',
    'CheckpointError',
    'UnsafeCheckpointError',
    'OutputError',
    'MMCamWarning',
    'PartialCheckpointWarning',
    'ConfigKeyWarning',
]


class MMCamError(Exception):
    """Base class of every error mmcam_ext raises for a user's mistake.

    Args:
        message (str): What was wrong, naming the input, and what to do.
            Defaults to ``''``.
        option (str, optional): The API argument the error is about
            (``'methods'``, ``'targets'``...), for front ends that call it
            by another name. Defaults to None.
    """

    def __init__(self, message: str = '', *, option: Optional[str] = None):
        super().__init__(message)
        self.option = option

    def __str__(self) -> str:
        # KeyError's str() quotes its message; show it as written.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class InputError(MMCamError, ValueError):
    """An argument has a wrong type or value."""


class ImageLoadError(InputError):
    """An input image is missing, unreadable, corrupt or of a wrong shape."""


class ConfigError(InputError):
    """A config file is missing, unreadable or lacks what CAMs need."""


class ModelError(InputError):
    """The model is not a classifier the CAM engine can explain."""


class LayerNotFoundError(MMCamError, KeyError):
    """A target layer name does not exist in the model."""


class LayoutError(InputError):
    """A target layer's output cannot be folded into a map of this input."""


class MethodError(MMCamError, KeyError):
    """An unknown CAM method, or options it does not take."""


class TargetError(InputError):
    """Target classes that are out of range or of a wrong shape."""


class NumericalError(MMCamError, FloatingPointError):
    """NaN or Inf in the logits, activations, gradients or maps."""


class ResourceLimitError(InputError):
    """An input is larger than the configured safety limit."""


class CheckpointError(MMCamError, RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """A checkpoint references a global that could run code on load."""


class OutputError(MMCamError, OSError):
    """An output folder or file cannot be created or written."""


class MMCamWarning(UserWarning):
    """Base class of the warnings mmcam_ext gives about a user's input.

    Front ends can catch this one category (the command line prints each as
    one line on stderr, with API names as flags).
    """


class PartialCheckpointWarning(MMCamWarning):
    """A checkpoint was loaded although its weights fit the model only partly.

    Raised as a warning (``warnings.warn``) only where the caller asked for
    it (``strict=False``); the message names the file and the keys that did
    not fit.
    """


class ConfigKeyWarning(MMCamWarning):
    """Config overrides (``cfg_options``) add keys the config did not have.

    Often a typo (``model.backbone.deptth``): the override then changes
    nothing it was meant to change.
    """
