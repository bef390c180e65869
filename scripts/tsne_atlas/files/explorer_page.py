"""The data inside ``explorer.html``: one JSON document in ``<script type="application/json"
id="tsne-atlas-data">``, read by the page's own code (``explorer_page/explorer.js``). Keys:

- ``title``, ``n`` (images shown), ``paths`` (relative to dataset.root), ``classes`` (sorted labels),
  ``labelled``, ``label_codes`` (each image's index into ``classes``);
- ``metadata``: ``columns`` (names) and ``values`` (one list of texts per column);
- ``runs``: per run, in menu order, ``label`` (menu text), ``title``, ``set`` (index into ``sets``),
  ``x`` and ``y``; ``anchors`` (null when the set has no clusters): where each of its set's named
  clusters is named on this map, x, y interleaved, in ``clusters.numbers`` order; ``density``: the
  map's density contours (explorer.density_lines): ``origin``, ``step``, per line its first vertex
  (``starts``, uint16 x, y in steps from ``origin``) and number of further vertices (``lengths``), and
  those vertices as int8 x, y steps from the vertex before (``deltas``, every line's in turn);
  ``partner``: the run put beside it when "compare with" is ticked (explorer.partner_runs);
- ``sets``: per feature set id, ``id``, ``k`` and each image's ``k`` nearest neighbours in feature
  space, ``neighbours`` (indices into ``paths``, -1 for none) and ``distances``, nearest first;
  ``clusters`` (null without clusters.csv): the clusters named on the map, ``numbers`` (largest
  first) and their ``texts``;
- ``predicted``: per feature set, each image's top-1 predicted class and probability as text, or null;
- ``colourings``: what the page can colour by, each ``name`` and ``per_set`` (then ``sets``: one per
  feature set, null where it has none) with ``kind`` ``categorical`` (``categories``, ``colours``,
  ``codes``) or ``continuous`` (``values``, NaN for n/a; ``low``, ``high``, ``colours``); the one with
  ``key`` ``cluster`` is each set's clusters (categories ``<number>: <name>``, codes the numbers);
- ``thumbs``: ``atlases`` (URLs: data URIs when ``inline``, else paths relative to the page), ``cell``,
  ``columns``; image ``i`` is cell ``i % columns²`` of atlas ``i // columns²``, row by row;
- ``image_base``: the dataset root relative to the page, as a URL prefix;
- ``query`` (with a query set only): ``n`` (query images shown), ``n_total``, ``paths`` (relative to
  query.root), ``classes`` and ``label_codes`` (its own: a class the reference lacks is fine),
  ``metadata`` (as above); ``runs``: per run, in menu order, its ``x`` and ``y`` on that run's map;
  ``sets``: per feature set, ``k`` and each query image's nearest reference images in feature space,
  ``neighbours`` (indices into ``paths``, the reference's, -1 for none) and ``distances``, nearest first;
  ``thumbs`` (``atlases`` and ``inline`` as above; cells as the reference's) and ``image_base`` (query.root).

Number arrays are base64 strings of little-endian float32 (coordinates, distances, values), int32
(codes, neighbours, lengths), uint16 or int8 (contours), row-major: the page decodes them into typed arrays without parsing numbers.

A points page (``explorer.backend: points``, explorer_points.py) has the same JSON document, without any
per-image array: ``title``, ``n``, ``classes``, ``labelled``, ``thumbs`` (``atlases`` as paths, ``cell``,
``columns``), ``image_base`` as above; ``token`` (the digest of its data), ``data`` (its data folder relative
to the page, ``explorer-data/``), ``chunk`` (images per chunk), ``metadata_columns``, ``runs`` (``label``,
``title``, ``set``), ``sets`` (``id``, ``k``, ``predicted`` and ``clustered``: whether the set has them),
``colourings`` as above but each colouring's ``codes`` or ``values`` replaced by ``file``, the data key
holding them, ``missing`` (the n/a colour) and ``point_size``. The data folder holds one classic script per
key, ``<key>.js``, calling ``tsneAtlasData("<key>", <JSON>)`` (JSON as in ``script_json``); an array is
``{"dtype", "data"}`` (dtype ``<f4``, ``<i4``, ``<u2`` or ``<u1``, data base64 as above):

- ``index``: ``format`` (1), ``token`` (the page's) and ``files`` (how many others);
- ``run-<k>``: run ``k``'s ``x`` and ``y`` (float32);
- ``colour-<c>`` (or ``colour-<c>-<s>`` for feature set ``s`` of a per-set colouring): the array of codes
  (the smallest unsigned type holding them) or values (float32, NaN for n/a);
- ``rows-<chunk>``: images ``chunk * chunk_size`` on: ``paths``, ``metadata`` (one list per column) and
  ``predicted`` (per feature set, a list of texts or null);
- ``neighbours-<s>-<chunk>``: those images' ``k`` nearest in feature set ``s``, ``neighbours`` (int32, -1
  for none) and ``distances`` (float32), row-major.
"""

import base64
import json
import os
import re
from pathlib import Path

import numpy as np

from ..jobs import AtlasError

SCRIPT_ID = "tsne-atlas-data"


def b64(array: np.ndarray, dtype: str) -> str:
    """``array`` as little-endian ``dtype`` (``<f4``, ``<i4``, ``<u2`` or ``<i1``) bytes, base64."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes()).decode("ascii")


def from_b64(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype))


def script_json(data: dict) -> str:
    """``data`` as JSON safe inside a ``<script type="application/json">`` element: no ``<``, ``>`` or
    ``&`` as such, so no user string can close the element or open another."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def read_page_data(html: str | os.PathLike) -> dict:
    """The data document of an explorer page."""
    text = Path(html).read_text(encoding="utf-8")
    match = re.search(rf'<script type="application/json" id="{SCRIPT_ID}">(.*?)</script>', text, flags=re.S)
    if match is None:
        raise AtlasError(f"{html}: no explorer data in the page; rebuild it with the explorer rule")
    return json.loads(match.group(1))
