"""A person's clicks on one unlabelled image, applied at once: the map AC or DISCA gives after them.

What the simulated click protocol (:func:`dial_core.evaluation.protocols.click_protocol`) does after
its last click, without a label or a simulated user, so ``dial refine`` (and a server) can correct a
map from a click log:

- **AC** (DISIR): one prediction of the whole image with the annotation channels of every click,
  encoded as the network was trained to read them (C-PM against the prediction without clicks).
  Whole-image inference is what :class:`~dial_core.interactive.local_prediction.ClickPredictor`
  reproduces bit for bit, click after click, for an interactive session.
- **DISCA** (and the other adapting arms of :data:`~dial_core.interactive.methods.METHODS`): a copy
  of the network adapted after each click in turn, as the protocol does: after the k-th click every
  ``disca_window`` grid window holding one of the first k clicks gets the method's SGD steps on
  those clicks (the protocol's re-predictions between clicks change nothing the steps read); then one
  prediction with the channels when the method reads them. The same clicks, settings and random
  stream give the map the protocol's ``human`` user reaches with that click log (the stream feeds
  only the channel drops: with a drop probability of 1 or 0 the seed does not matter).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

from dial_core.clicks.types import Click
from dial_core.errors import CheckpointError, ConfigError
from dial_core.evaluation.protocols import InteractionConfig, _adapt, _Scene, disca_windows
from dial_core.interactive.disca import DiscaConfig
from dial_core.interactive.inference import predict_probs
from dial_core.interactive.methods import method as interactive_method
from dial_core.models.segmenter import Segmenter


def check_refinable(model: Segmenter, what: str = "the model") -> None:
    """A network that reads clicks through C-GT needs the ground truth at every click: a person's
    clicks on an unlabelled image cannot drive it."""
    if model.spec.encoding == "cgt":
        raise CheckpointError(f"{what} reads clicks with the cgt encoding, which needs the ground-truth label at every "
                              "click (an upper bound of the DIAL study, not a method); refine with a network trained "
                              "with the dt, binary, cpm or gf encoding")


def refine(
    model: Segmenter,
    image: np.ndarray,
    clicks: Sequence[Click],
    method: str = "ac",
    disca: DiscaConfig | None = None,
    window: int = 512,
    overlap: int = 128,
    disca_window: int = 512,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Softmax (N, H, W) of ``image`` (H, W, 3) after ``clicks`` (image pixel coordinates, in the
    order they were given) with ``method``. An adapting method needs ``disca`` (its lr, steps, λ,
    p0 and drop probability; the method switches its own parts off) and adapts a copy of ``model``;
    ``seed`` seeds its channel-drop draws."""
    check_refinable(model)
    arm = interactive_method(method)
    if arm.family != "network":
        raise ConfigError(f"method {method!r} is a {arm.family} method ({arm.description}), not a network method")
    encoder = model.spec.click_encoder()
    initial = None
    if arm.adapts or encoder.needs_prediction:  # DISCA's p0, C-PM's regions
        initial = predict_probs(model, image, None, window, overlap, progress=progress)[0]
    if not arm.adapts:
        channels = encoder(clicks, image.shape[:2], image=image,
                           prediction=None if initial is None else initial.argmax(0))
        return predict_probs(model, image, channels, window, overlap, progress=progress)[0]
    model = adapted_copy(model, image, clicks, method, disca, initial, window, overlap, disca_window, seed, progress)
    channels = _Scene(image, None, initial.argmax(0)).channels(model, clicks) if arm.channels else None
    return predict_probs(model, image, channels, window, overlap, progress=progress)[0]


def adapted_copy(
    model: Segmenter,
    image: np.ndarray,
    clicks: Sequence[Click],
    method: str,
    disca: DiscaConfig | None,
    initial: np.ndarray,
    window: int = 512,
    overlap: int = 128,
    disca_window: int = 512,
    seed: int = 0,
    progress: bool = False,
) -> Segmenter:
    """A copy of ``model`` adapted by the adapting ``method`` after each of ``clicks`` in turn, as the
    click protocol does; ``initial`` is the softmax (N, H, W) of ``image`` without clicks (DISCA's p0,
    C-PM's regions). Shared by :func:`refine` and ``dial serve``'s DISCA button, so both give one map."""
    arm = interactive_method(method)
    if disca is None:
        raise ConfigError(f"method {method!r} adapts the network: give its DiscaConfig (lr, steps, λ, p0, drop probability)")
    model = copy.deepcopy(model)
    scene = _Scene(image, None, initial.argmax(0))
    cfg = InteractionConfig(method, "human", arm.adaptation(disca), window, overlap, disca_window)
    rng = np.random.default_rng(seed)
    given = list(clicks)
    for k in tqdm(range(1, len(given) + 1), desc=method, unit="click", disable=not progress, leave=False):
        _adapt(model, scene, given[:k], initial, disca_windows(image.shape[:2], given[:k], disca_window), cfg, rng)
    return model
