"""Event kinds must be learnable: an independent classifier on librosa log-mel features separates them."""

import librosa
import numpy as np

from mint.data.synth.events import EVENT_KINDS
from mint.data.synth.scenes import Scene, render_scene, sample_scene

SR = 16000
HOP = 160
TRAIN_PER_KIND = 20
TEST_PER_KIND = 6


def _feature(log_mel: np.ndarray, scene: Scene) -> np.ndarray:
    """Mean log-mel over the event's frames minus the background's median, scaled to unit length."""
    placed = scene.events[0]
    start = int(placed.onset * SR / HOP)
    stop = max(start + 1, int(placed.offset * SR / HOP))
    background = np.concatenate([log_mel[:, :start], log_mel[:, stop:]], axis=1)
    feature = log_mel[:, start:stop].mean(axis=1) - np.median(background, axis=1)
    return feature / np.linalg.norm(feature)


def test_nearest_centroid_on_log_mel_separates_the_kinds():
    scenes, labels, is_train = [], [], []
    for label, kind in enumerate(EVENT_KINDS):
        for index in range(TRAIN_PER_KIND + TEST_PER_KIND):
            rng = np.random.default_rng([99, label, index])
            scenes.append(sample_scene(rng, num_events=1, event_kinds=[kind], clip_seconds=2.0))
            labels.append(label)
            is_train.append(index < TRAIN_PER_KIND)
    audio = np.stack([render_scene(scene, SR) for scene in scenes])
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=400, hop_length=HOP, n_mels=64)
    features = np.stack([_feature(np.log(m + 1e-10), scene) for m, scene in zip(mel, scenes, strict=True)])
    labels, is_train = np.array(labels), np.array(is_train)

    centroids = np.stack([features[is_train & (labels == k)].mean(axis=0) for k in range(len(EVENT_KINDS))])
    test_features, test_labels = features[~is_train], labels[~is_train]
    distances = ((test_features[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=-1)
    accuracy = np.mean(np.argmin(distances, axis=1) == test_labels)
    assert accuracy >= 0.9, accuracy
