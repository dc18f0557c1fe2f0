"""The generator's numbers: catalog size and popularity, playlist lengths, the genre archetypes, the outlier kinds.

Every constant that sets how real the data looks is here, with the random streams' spawn keys, so the other
modules of :mod:`raysweep.synth` hold only the drawing. The per-genre columns of the tables are unpacked into
arrays indexed by catalog genre: the profiles' genres first (``GENRES``), then the outlier kinds' own.
"""

from __future__ import annotations

import numpy as np

from raysweep.mpd import MIN_TRACKS

# Catalog size, chosen so the full 1M playlists use about as many distinct tracks as the real MPD (2.26M).
N_ARTISTS = 200_000
ARTIST_ZIPF = 1.2  # artist popularity within a genre ~ (rank + shift)^-a (Zipf-Mandelbrot)
ARTIST_SHIFT = 15.0
LENGTH_LOG_MEAN, LENGTH_LOG_SD = 3.95, 0.95  # truncated to 5..250: mean ~66, mode ~20, median ~49
FAVOURITE_SHARE = 0.5  # of a playlist's tracks come from its few favourite artists (as in real playlists)
FAVOURITE_SPAN = 12  # one favourite artist per this many tracks
PROFILE_DOMINANT = 0.75  # a profile's weight on its dominant genre (0.21 on 1-3 others, 0.04 on all)
PLAYLIST_DIRICHLET = 40.0  # concentration of a playlist's genre mix around its profile's
SLICE_SEED, CATALOG_SEED, FEATURE_SEED, PROFILE_SEED = 1, 0, 2, 3  # spawn keys of the random streams
FEATURE_CHUNK = 1 << 16  # tracks per audio-feature random stream, so a track's features never depend on N
DAY = 86_400
LAST_DAY = 1_509_494_400  # 2017-11-01 UTC: the MPD drops tracks added later

# Genre archetypes of the taste profiles: relative popularity (share of the catalog's artists; sets profile
# prevalence), then the centres of danceability, energy, speechiness, acousticness, instrumentalness, liveness,
# valence (probabilities), tempo (BPM), loudness (dB), P(mode=1), mean track length (s), P(3/4 time); then base
# titles, most common first.
GENRES = (
    ("pop", .13, .68, .68, .07, .18, .01, .17, .52, 118, -6.0, .62, 210, .02,
     "party|summer|pop|good vibes|pop hits|top hits|car|feels|new|happy"),
    ("rap", .13, .77, .65, .27, .13, .01, .20, .48, 122, -6.5, .55, 220, .01,
     "rap|lit|hip hop|turn up|trap|bangers|rap 🔥|hype|gym|rap caviar"),
    ("country", .10, .58, .70, .04, .22, .00, .18, .58, 126, -5.5, .86, 210, .04,
     "country|country music|classic country|country jams|old country|country songs|country ❤️|boots|country hits"),
    ("rock", .08, .48, .79, .05, .08, .06, .20, .50, 128, -5.5, .70, 240, .03,
     "rock|classic rock|alternative|rock n roll|dad rock|grunge|rock music|road trip|90s rock"),
    ("chill", .05, .62, .35, .08, .60, .50, .12, .40, 90, -11.0, .55, 170, .03,
     "chill|chill vibes|chillin|relax|lofi|study|mellow|calm|chill 🌊|coffee"),
    ("edm", .05, .66, .86, .07, .04, .30, .22, .42, 126, -4.5, .55, 230, .01,
     "edm|house|electronic|dubstep|festival|rave|bass|techno|trance|edm 🔥"),
    ("rnb", .05, .68, .55, .12, .25, .01, .15, .48, 105, -7.0, .50, 230, .03,
     "r&b|rnb|slow jams|bae|love|smooth|late night|baby making|feels|soul"),
    ("indie", .05, .55, .58, .05, .30, .10, .15, .42, 120, -8.0, .68, 230, .05,
     "indie|alt|indie rock|feels|sad|hipster|bedroom pop|aesthetic|vibes|indie vibes"),
    ("workout", .04, .70, .88, .08, .05, .05, .25, .55, 128, -4.2, .55, 200, .01,
     "workout|gym|running|cardio|pump up|gym music|work out|run|lifting|beast mode"),
    ("oldies", .035, .58, .55, .04, .50, .02, .20, .70, 120, -10.0, .78, 180, .12,
     "oldies|oldies but goodies|classics|60s|70s|motown|80s|golden oldies|old school|retro"),
    ("throwback", .04, .78, .70, .18, .10, .00, .22, .66, 100, -6.0, .55, 240, .01,
     "throwback|throwbacks|2000s|throwback jams|90s|00s|old school hip hop|middle school|high school|nostalgia"),
    ("worship", .03, .45, .55, .04, .30, .00, .20, .28, 125, -7.5, .80, 300, .10,
     "worship|christian|jesus|praise|church|gospel|sunday|faith|worship music|god"),
    ("christmas", .025, .52, .45, .05, .60, .00, .25, .60, 115, -9.0, .85, 190, .20,
     "christmas|christmas music|xmas|holiday|christmas songs|holidays|christmas 🎄|merry christmas|winter"),
    ("latin", .03, .74, .76, .09, .22, .00, .18, .72, 115, -5.0, .55, 220, .01,
     "latin|reggaeton|spanish|latino|bachata|salsa|musica|fiesta|cumbia|latin hits"),
    ("folk", .03, .52, .35, .04, .78, .05, .13, .38, 115, -11.0, .75, 220, .12,
     "folk|acoustic|coffee house|indie folk|campfire|rainy day|singer songwriter|cozy|autumn"),
    ("punk", .025, .45, .90, .07, .02, .01, .28, .52, 160, -4.5, .68, 180, .02,
     "punk|pop punk|emo|skate|warped tour|emo af|punk rock|angst|mosh"),
    ("metal", .02, .40, .95, .09, .01, .15, .25, .30, 130, -4.0, .50, 280, .03,
     "metal|heavy metal|metalcore|screamo|rage|hardcore|thrash|metal 🤘|doom"),
    ("soundtrack", .02, .32, .30, .04, .75, .70, .13, .18, 105, -17.0, .45, 200, .12,
     "disney|musicals|broadway|soundtrack|movie music|hamilton|disney 🏰|film scores|epic|video games"),
    ("jazz", .02, .55, .30, .06, .80, .40, .15, .50, 110, -13.0, .55, 300, .08,
     "jazz|smooth jazz|coffee shop|jazz vibes|dinner|sunday morning|swing|bossa nova|cocktails"),
    ("soul", .02, .58, .52, .05, .45, .05, .25, .62, 110, -9.0, .62, 230, .15,
     "soul|funk|blues|groove|motown|funky|old soul|blues rock|rhythm and blues"),
    ("reggae", .015, .75, .60, .12, .15, .03, .20, .75, 100, -7.0, .60, 240, .02,
     "reggae|beach|island|summer vibes|dub|ska|beach day|sunshine|roots"),
    ("sleep", .015, .25, .10, .05, .90, .88, .10, .10, 90, -25.0, .55, 240, .05,
     "sleep|sleepy|bedtime|ambient|meditation|yoga|rain|spa|zen"),
    ("classical", .015, .30, .12, .05, .95, .85, .12, .22, 100, -22.0, .65, 330, .15,
     "classical|piano|focus|orchestra|classical music|concentration|mozart|cello|reading"),
    ("kpop", .01, .70, .80, .08, .12, .00, .18, .60, 122, -4.0, .60, 210, .01,
     "kpop|k-pop|bts|korean|anime|jpop|kpop 💕|idol|kdrama"),
)
# Genres of the outlier playlists only, after the profiles' genres in the catalog: number of artists, then the
# columns above (the probabilities, tempo, loudness, P(mode=1), track length, P(3/4)), the track-level tempo SD
# (BPM; speech has no beat, so Spotify's tempo for it is erratic) and the titles.
OUTLIER_GENRES = (
    ("live", 2000, .45, .80, .12, .15, .03, .90, .40, 125, -7.0, .65, 290, .03, 22,
     "live|concerts|live music|live sessions|unplugged|concert|live at red rocks|live albums|tour"),
    ("nature sounds", 300, .10, .04, .06, .60, .97, .15, .03, 95, -28.0, .50, 600, .10, 30,
     "rain sounds|sleep sounds|nature sounds|rain|ocean waves|thunderstorm|sleep|relaxing sounds|forest"),
    ("white noise", 150, .10, .93, .06, .30, .97, .20, .03, 100, -24.0, .50, 900, .10, 30,
     "white noise|sleep|baby sleep|brown noise|fan noise|white noise sleep|study noise|noise"),
    ("spoken word", 800, .65, .30, .93, .75, .00, .30, .45, 105, -13.0, .55, 420, .10, 40,
     "audiobooks|podcasts|audiobook|stories|spoken word|poetry|books|bedtime stories"),
    ("comedy", 600, .55, .70, .93, .80, .00, .85, .40, 110, -11.0, .55, 200, .10, 40,
     "stand up comedy|comedy|stand up|funny|comedians|jokes|lol|comedy albums"),
)
OUTLIER_RATE = 0.01
OUTLIER_KINDS = ("live", "sounds", "spoken", "short")
SHORT_LENGTHS = (MIN_TRACKS, MIN_TRACKS + 2)  # the short kind's lengths; the other playlists are longer
N_PROFILE_GENRES = len(GENRES)
# The catalog genres each kind draws from (one per playlist); a short playlist draws one of its profile's.
KIND_GENRES = tuple(tuple(N_PROFILE_GENRES + [genre[0] for genre in OUTLIER_GENRES].index(name) for name in names)
                    for names in (("live",), ("nature sounds", "white noise"), ("spoken word", "comedy")))
GENRE_SHARE = np.array([genre[1] for genre in GENRES]) / sum(genre[1] for genre in GENRES)
ARTISTS_PER_GENRE = np.concatenate([np.maximum(1, np.rint(GENRE_SHARE * N_ARTISTS)),
                                    [genre[1] for genre in OUTLIER_GENRES]]).astype(np.int64)
ALL_GENRES = GENRES + tuple(genre[:14] + genre[15:] for genre in OUTLIER_GENRES)
PROB_CENTRES = np.array([genre[2:9] for genre in ALL_GENRES])  # (n_genres, 7)
TEMPO, LOUDNESS, MODE_P, LENGTH_S, TRIPLE_P = (np.array([genre[i] for genre in ALL_GENRES])
                                                   for i in range(9, 14))
TEMPO_SD = np.concatenate([np.full(N_PROFILE_GENRES, 22.0), [genre[14] for genre in OUTLIER_GENRES]])
GENRE_TITLES = tuple(tuple(genre[14].split("|")) for genre in ALL_GENRES)
PROB_FEATURES = ("danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness",
                 "valence")
# Spread in logit units (artist, track) per probability feature: instrumentalness is bimodal in real data.
PROB_SPREAD = np.array([[.35, .44], [.35, .48], [.45, .56], [.6, .8], [1.2, 1.76], [.3, .6], [.45, .64]])
