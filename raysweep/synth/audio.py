"""The track audio-feature table: the 13 Spotify audio features of every track that occurs, in their real units.

A track's features are its genre's centre plus its artist's offset and its own noise (the seven probabilities in
logit units), so profiles differ in mean features, but noisily. The noise comes from one random stream per chunk of
``FEATURE_CHUNK`` catalog tracks, so a track's values depend only on the seed and its index, never on N.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from raysweep.dataset import AUDIO_FEATURES
from raysweep.synth.catalog import Catalog
from raysweep.synth.names import spotify_ids
from raysweep.synth.parameters import (FEATURE_CHUNK, FEATURE_SEED, LOUDNESS, MODE_P, PROB_CENTRES, PROB_FEATURES,
                                       PROB_SPREAD, TEMPO, TEMPO_SD, TRIPLE_P)


def audio_features(catalog: Catalog, tracks: np.ndarray) -> pa.Table:
    """The 13 audio features of sorted unique ``tracks``; a track's values depend only on the seed and its index."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in AUDIO_FEATURES}
    uris = []
    chunks = tracks // FEATURE_CHUNK
    for chunk in np.unique(chunks):
        start = int(chunk) * FEATURE_CHUNK
        stop = min(start + FEATURE_CHUNK, catalog.track_album.size)
        rng = np.random.default_rng(np.random.SeedSequence(catalog.seed, spawn_key=(FEATURE_SEED, int(chunk))))
        noise = rng.standard_normal((stop - start, 9))
        uniform = rng.random((stop - start, 3))
        local = tracks[chunks == chunk] - start
        selected = local + start
        artists = catalog.track_artist(selected)
        genres = catalog.artist_genre[artists]
        offsets = catalog.artist_offsets[artists]
        noise, uniform = noise[local], uniform[local]
        centre = np.log(PROB_CENTRES[genres] + 1e-3) - np.log1p(-PROB_CENTRES[genres] + 1e-3)
        logit = centre + offsets[:, :7] * PROB_SPREAD[:, 0] + noise[:, :7] * PROB_SPREAD[:, 1]
        probabilities = np.round(1 / (1 + np.exp(-logit)), 4)
        for j, name in enumerate(PROB_FEATURES):
            columns[name].append(probabilities[:, j])
        tempo = TEMPO[genres] + 8 * offsets[:, 7] + TEMPO_SD[genres] * noise[:, 7]
        columns["tempo"].append(np.round(np.clip(tempo, 45, 215), 3))
        columns["loudness"].append(np.round(np.clip(LOUDNESS[genres] + 2 * offsets[:, 8] + 2.5 * noise[:, 8],
                                                    -45, -0.5), 3))
        # Key: mostly uniform with a per-genre tilt; mode and 3/4 time follow the genre's rates.
        key_tilt = (genres * 5 + 2) % 12
        columns["key"].append(np.where(uniform[:, 0] < 0.15, key_tilt, (uniform[:, 0] * 12).astype(np.int64) % 12))
        columns["mode"].append((uniform[:, 1] < MODE_P[genres]).astype(np.int64))
        triple = uniform[:, 2] < TRIPLE_P[genres]
        odd = uniform[:, 2] > 0.985
        columns["time_signature"].append(np.where(triple, 3, np.where(odd, 5, 4)).astype(np.int64))
        columns["duration_ms"].append(catalog.track_duration_ms[selected].astype(np.int64))
        uris.extend(spotify_ids(0, selected, catalog.seed))
    table = {"track_uri": pa.array(["spotify:track:" + uri for uri in uris], pa.string())}
    for name in AUDIO_FEATURES:
        values = np.concatenate(columns[name])
        table[name] = pa.array(values, pa.int64() if values.dtype.kind == "i" else pa.float64())
    return pa.table(table)

