"""Image problems (rule image_quality): each check flags a synthetic image with its problem and nothing
else, real photos with none; the rules on the whole sample (the share rule, blurry unless low
information); quality.csv's round trip; the stage's table, figures and errors; and a real run's outputs."""

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
import yaml
from PIL import Image, ImageFilter

from conftest import SCHEMA, schema_defaults
from tsne_atlas import quality as q
from tsne_atlas.files.manifest import read_images, write_images, write_manifest
from tsne_atlas.files.quality import QUALITY_FIELDS, read_quality, write_quality
from tsne_atlas.jobs import AtlasError
from tsne_atlas.quality_figure import draw_problem, figure_title, image_quality, worst_first

SKIMAGE_DATA = Path(str(importlib.resources.files("skimage") / "data"))
SKLEARN_IMAGES = Path(sklearn.datasets.__file__).parent / "images"
# Colour photos of every kind of subject, in the files' own formats (PNG, JPEG): no problem at all.
REAL_PHOTOS = [
    SKIMAGE_DATA / "chelsea.png",
    SKIMAGE_DATA / "coffee.png",
    SKIMAGE_DATA / "astronaut.png",
    SKIMAGE_DATA / "rocket.jpg",
    SKIMAGE_DATA / "motorcycle_left.png",
    SKIMAGE_DATA / "ihc.png",
    SKLEARN_IMAGES / "china.jpg",
    SKLEARN_IMAGES / "flower.jpg",
]


def thresholds() -> dict:
    return q.thresholds_of(schema_defaults("quality"))


def chelsea() -> np.ndarray:
    return np.asarray(Image.open(SKIMAGE_DATA / "chelsea.png").convert("RGB"))


def problem_image(problem: str) -> Image.Image:
    """A photo (skimage's chelsea, 451 x 300) given one problem, as a file of that kind would hold it."""
    photo = chelsea()
    if problem == "blurry":
        return Image.fromarray(photo).filter(ImageFilter.GaussianBlur(3))
    if problem == "dark":
        return Image.fromarray((photo * 0.15).astype(np.uint8))
    if problem == "light":
        return Image.fromarray((255 - (255 - photo.astype(np.float64)) * 0.04).astype(np.uint8))
    if problem == "low_information":  # a flat beige with a one-level speckle: a blank wall
        speckle = np.random.default_rng(0).integers(0, 2, size=(300, 400, 3))
        return Image.fromarray((np.array([200, 180, 150]) + speckle).astype(np.uint8))
    if problem == "odd_aspect_ratio":  # a 451 x 90 strip, 5:1
        return Image.fromarray(photo[100:190])
    if problem == "grayscale":  # grey pixels stored as RGB (cleanvision reads only the mode)
        return Image.fromarray(photo).convert("L").convert("RGB")
    if problem == "small":
        return Image.fromarray(photo).resize((16, 16), Image.Resampling.LANCZOS)
    raise ValueError(problem)


def listed(paths: list, max_share: float = 1.0) -> list[list[str]]:
    """Each file's listed problems, with the schema's thresholds."""
    scores = [q.image_scores(q.read_image(path, q.ANALYSIS_SIDE)) for path in paths]
    return q.flag(scores, thresholds(), max_share).problems


@pytest.mark.parametrize("problem", [check.name for check in q.CHECKS])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_photo_given_one_problem_is_flagged_with_exactly_that_problem(tmp_path, problem, fmt):
    path = tmp_path / f"{problem}.{fmt.lower()}"
    problem_image(problem).save(path, format=fmt, quality=95)
    assert listed([path]) == [[problem]]


def test_real_photos_are_flagged_with_no_problem():
    assert listed(REAL_PHOTOS) == [[] for _ in REAL_PHOTOS]


def test_a_grayscale_photo_is_flagged_grayscale_whether_stored_as_l_or_rgb(tmp_path):
    camera = Image.open(SKIMAGE_DATA / "camera.png")
    assert camera.mode == "L"
    camera.convert("RGB").save(tmp_path / "camera-rgb.jpg", quality=90)
    assert listed([SKIMAGE_DATA / "camera.png", tmp_path / "camera-rgb.jpg"]) == [["grayscale"], ["grayscale"]]


def test_each_score_measures_what_its_check_says():
    """The scores of the synthetic problems against the photo's, by their definitions."""
    photo = q.image_scores(q.QualityImage(chelsea(), 451, 300))
    blurred = q.image_scores(q.QualityImage(np.asarray(problem_image("blurry")), 451, 300))
    assert blurred["sharpness"] < photo["sharpness"] / 4
    # Darkening scales contrast and detail alike: sharpness stays, brightness falls.
    dark = q.image_scores(q.QualityImage(np.asarray(problem_image("dark")), 451, 300))
    assert dark["sharpness"] == pytest.approx(photo["sharpness"], rel=0.15)
    assert dark["brightness_p99"] < 0.32 < photo["brightness_p99"]
    # Size and aspect ratio come from the file's size, not from the pixels given.
    banner = q.image_scores(q.QualityImage(np.zeros((4, 4, 3), np.uint8), 1000, 200))
    assert banner["aspect_ratio"] == 0.2 and banner["size"] == pytest.approx(np.sqrt(200_000))
    # Grey pixels: no colour, whatever the image; one coloured pixel of four: a quarter of its spread.
    grey = np.full((2, 2, 3), 90, np.uint8)
    assert q.colourfulness(q.QualityImage(grey, 2, 2)) == 0.0
    grey[0, 0] = (255, 0, 90)
    assert q.colourfulness(q.QualityImage(grey, 2, 2)) == pytest.approx(0.25)
    # Under 3 pixels a side there is no Laplacian: 0.
    assert q.sharpness(q.QualityImage(np.zeros((2, 9, 3), np.uint8), 9, 2)) == 0.0


@pytest.mark.parametrize("path", [*REAL_PHOTOS[:3], SKIMAGE_DATA / "camera.png"])
def test_entropy_is_pillows_image_entropy_of_the_rgb_copy_as_cleanvision_scores_it(path):
    image = q.read_image(path, q.ANALYSIS_SIDE)
    assert q.entropy(image) == pytest.approx(Image.fromarray(image.rgb).entropy(), abs=1e-9)


def test_brightness_is_cleanvisions_perceived_brightness():
    pixels = np.array([[[255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    brightness = q.QualityImage(pixels, 4, 1).brightness
    assert brightness[0] == pytest.approx([1.0, np.sqrt(0.241), np.sqrt(0.691), np.sqrt(0.068)])


def test_read_image_scales_down_to_256_and_keeps_the_files_upright_size(tmp_path):
    Image.fromarray(chelsea()).save(tmp_path / "cat.jpg", quality=90)
    image = q.read_image(tmp_path / "cat.jpg", q.ANALYSIS_SIDE)
    assert (image.width, image.height) == (451, 300) and image.rgb.shape == (170, 256, 3)
    assert image.rgb.dtype == np.uint8
    # An EXIF orientation of 6 (turned 90 degrees): the upright image is 300 x 451.
    exif = Image.Exif()
    exif[q.EXIF_ORIENTATION] = 6
    Image.fromarray(chelsea()).save(tmp_path / "turned.jpg", quality=90, exif=exif)
    turned = q.read_image(tmp_path / "turned.jpg", q.ANALYSIS_SIDE)
    assert (turned.width, turned.height) == (300, 451) and turned.rgb.shape == (256, 170, 3)
    assert q.image_scores(turned)["aspect_ratio"] == pytest.approx(300 / 451)
    # Smaller than 256: as it is.
    small = q.read_image(SKIMAGE_DATA / "microaneurysms.png", q.ANALYSIS_SIDE)
    assert small.rgb.shape == (102, 102, 3)


def test_blurry_is_not_listed_for_an_image_that_is_low_information(tmp_path):
    Image.new("RGB", (160, 120), (120, 120, 120)).save(tmp_path / "blank.png")
    scores = q.image_scores(q.read_image(tmp_path / "blank.png", q.ANALYSIS_SIDE))
    assert scores["sharpness"] == 0.0  # below any threshold: nothing to be sharp
    assert listed([tmp_path / "blank.png"]) == [["low_information", "grayscale"]]


def test_a_score_at_the_threshold_is_not_flagged_only_one_beyond_it(tmp_path):
    """``_below``: flagged under the threshold, ``_above``: over it; the threshold itself passes."""
    photo = Image.fromarray(chelsea())
    photo.resize((64, 64)).save(tmp_path / "at.png")  # size 64 = small_below
    photo.resize((64, 63)).save(tmp_path / "under.png")  # size 63.5
    assert listed([tmp_path / "at.png", tmp_path / "under.png"]) == [[], ["small"]]
    light = q.CHECKS_BY_NAME["light"]
    assert not light.fails(0.95, 0.95) and light.fails(0.9501, 0.95) and not light.fails(0.1, 0.95)


def test_a_check_failed_by_more_than_max_share_of_the_sample_is_listed_for_no_image():
    colour = {"sharpness": 1.0, "brightness_p99": 0.9, "brightness_p5": 0.1, "entropy": 8.0}
    colour |= {"aspect_ratio": 1.0, "colourfulness": 0.2, "size": 300.0}
    grey = colour | {"colourfulness": 0.0}
    # Two grey images of five: each is listed.
    flags = q.flag([grey, colour, grey, colour, colour], thresholds(), max_share=0.5)
    assert flags.problems == [["grayscale"], [], ["grayscale"], [], []] and flags.waived == []
    # Three of five: a grey collection with some colour images; listed for none, but still counted.
    flags = q.flag([grey, colour, grey, grey, colour], thresholds(), max_share=0.5)
    assert flags.problems == [[], [], [], [], []] and flags.waived == ["grayscale"]
    assert flags.fails["grayscale"] == [True, False, True, True, False]
    # Exactly the share is not more than it; max_share 1 lists every failure.
    assert q.flag([grey, colour], thresholds(), max_share=0.5).problems == [["grayscale"], []]
    assert q.flag([grey, grey], thresholds(), max_share=1.0).problems == [["grayscale"], ["grayscale"]]
    assert q.flag([], thresholds(), max_share=0.5).problems == []


def test_every_check_has_its_threshold_in_the_schema_and_nothing_else_is_there():
    """Adding a check is its CHECKS entry and its key in the schema's quality section: this names what
    is missing."""
    section = yaml.safe_load(SCHEMA.read_text())["properties"]["quality"]["properties"]
    settings = {check.setting for check in q.CHECKS}
    assert settings | {"max_share", "thumb_size", "max_images"} == set(section)
    for check in q.CHECKS:
        assert section[check.setting]["x-reruns"] == ["image_quality"], check.setting
        assert check.setting.endswith("_below" if check.below else "_above")
    assert len({check.name for check in q.CHECKS}) == len({check.column for check in q.CHECKS}) == len(q.CHECKS)
    assert all(other in q.CHECKS_BY_NAME for check in q.CHECKS for other in check.unless)
    assert QUALITY_FIELDS[4:-1] == tuple(check.column for check in q.CHECKS)


def test_quality_csv_round_trips_user_text_and_lists(tmp_path):
    rows = [
        {"path": 'odd, "quoted"\nname.png', "label": "a | b", "width": 451, "height": 300, "problems": []},
        {"path": "été/ünï.png", "label": "unlabelled", "width": 16, "height": 16, "problems": ["blurry", "small"]},
    ]
    for n, row in enumerate(rows):
        row.update({check.column: 0.123456 * (n + 1) for check in q.CHECKS})
    write_quality(tmp_path / "quality.csv", rows)
    read = read_quality(tmp_path / "quality.csv")
    for row in rows:
        row.update({check.column: round(row[check.column], 4) for check in q.CHECKS})
    assert read == rows
    text = (tmp_path / "quality.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(QUALITY_FIELDS)
    assert ",blurry | small\n" in text and ",0.1235," in text


def test_a_table_of_other_columns_is_refused_naming_the_file(tmp_path):
    (tmp_path / "quality.csv").write_text("path,label\n", encoding="utf-8")
    with pytest.raises(AtlasError, match=r"quality\.csv: not a quality table with columns path, label, width"):
        read_quality(tmp_path / "quality.csv")


def sample_of(root: Path, tmp_path: Path, names: dict[str, Image.Image], labels=None) -> dict:
    """A sample of the images ``names`` (file name -> image, written under ``root``) as the stage reads it."""
    root.mkdir(parents=True, exist_ok=True)
    for name, image in names.items():
        image.save(root / name)
    paths = sorted(names)
    write_images(tmp_path / "images.csv", paths, ["0" * 64] * len(paths))
    write_manifest(tmp_path / "manifest.csv", paths, labels or ["unlabelled"] * len(paths))
    return {"images": str(tmp_path / "images.csv"), "manifest": str(tmp_path / "manifest.csv"), "root": str(root)}


def run_stage(sample: dict, out: Path, **settings) -> dict:
    outputs = {"quality": str(out / "quality.csv"), "figures": [str(out / f"{c.name}.png") for c in q.CHECKS]}
    defaults = schema_defaults("quality")
    image_quality(
        **sample,
        thresholds=q.thresholds_of(defaults),
        max_share=settings.get("max_share", defaults["max_share"]),
        thumb_size=defaults["thumb_size"],
        max_images=settings.get("max_images", defaults["max_images"]),
        **outputs,
    )
    return outputs


def test_the_stage_writes_a_row_per_image_and_a_figure_per_problem_byte_identical_on_rerun(tmp_path):
    names = {f"{problem}.png": problem_image(problem) for problem in (c.name for c in q.CHECKS)}
    names |= {f"photo-{path.stem}.png": Image.open(path).convert("RGB") for path in REAL_PHOTOS[:4]}
    labels = ["photo" if name.startswith("photo-") else "made" for name in sorted(names)]
    sample = sample_of(tmp_path / "images", tmp_path, names, labels)
    first = run_stage(sample, tmp_path / "first")
    rows = read_quality(first["quality"])
    assert [row["path"] for row in rows] == read_images(sample["images"])[0]
    assert {row["path"]: row["problems"] for row in rows} == {
        name: ([name.removesuffix(".png")] if not name.startswith("photo-") else []) for name in names
    }
    assert rows[0]["width"] == 451 and rows[0]["height"] == 300  # blurry.png, sorted first
    second = run_stage(sample, tmp_path / "second")
    for a, b in zip([first["quality"], *first["figures"]], [second["quality"], *second["figures"]]):
        assert Path(a).read_bytes() == Path(b).read_bytes(), a
    for check, png in zip(q.CHECKS, first["figures"]):
        with Image.open(png) as image:
            assert image.size[0] > 600
            assert image.text["Title"] == figure_title(check, 1, 11, thresholds()[check.setting])[0]
    assert Image.open(first["figures"][0]).text["Title"] == "Blurry: 1 of 11 images (sharpness < 0.25)"


def test_a_problems_figure_shows_its_flagged_images_worst_first_with_path_label_and_score(tmp_path):
    names = {
        f"blur-{sigma}.png": Image.fromarray(chelsea()).filter(ImageFilter.GaussianBlur(sigma)) for sigma in (2, 6, 4)
    }
    names["photo.png"] = Image.fromarray(chelsea())
    sample_of(tmp_path, tmp_path, names)
    paths = sorted(names)
    scores = [q.image_scores(q.read_image(tmp_path / path, q.ANALYSIS_SIDE)) for path in paths]
    blurry = q.CHECKS_BY_NAME["blurry"]
    args = (paths, ["cat"] * 4, scores, tmp_path, 0.25, 0.5, 64)
    fig = draw_problem(blurry, [1, 2], 3, False, *args)  # blur-4 and blur-6 shown of the three
    texts = [text.get_text() for text in fig.texts]
    assert texts[0] == "Blurry: 3 of 4 images (sharpness < 0.25)"
    assert texts[1].startswith("little fine detail for its contrast")
    assert texts[2:] == [
        "blur-4.png",
        "cat",
        f"sharpness {scores[1]['sharpness']:.3f}",
        "blur-6.png",
        "cat",
        f"sharpness {scores[2]['sharpness']:.3f}",
    ]
    assert len(fig.axes) == 2 and fig.axes[0].images[0].get_array().shape == (43, 64, 3)
    # The stage's order: the lowest sharpness first.
    assert [paths[i] for i in worst_first(blurry, [0, 1, 2], scores, paths)] == [
        "blur-6.png",
        "blur-4.png",
        "blur-2.png",
    ]
    # Waived: a red note; none flagged: the panel says so and names the closest image; unlabelled: no label line.
    waived = [text.get_text() for text in draw_problem(blurry, [1], 3, True, *args).texts]
    assert waived[2].startswith("Listed for no image: 3 of 4 fail it, more than quality.max_share (0.5)")
    empty = [text.get_text() for text in draw_problem(blurry, [], 0, False, *args).texts]
    assert (
        empty[2]
        == f"No images flagged: none has sharpness < 0.25; the closest: blur-6.png, sharpness {scores[2]['sharpness']:.3f}"
    )
    bare = draw_problem(blurry, [1], 3, False, paths, None, *args[2:])
    assert [text.get_text() for text in bare.texts][2:] == ["blur-4.png", f"sharpness {scores[1]['sharpness']:.3f}"]


def test_an_unlabelled_sample_with_every_image_failing_a_check_lists_none_and_still_draws(tmp_path, caplog):
    grey = {f"g{i}.png": problem_image("grayscale") for i in range(3)}
    sample = sample_of(tmp_path / "images", tmp_path, grey)
    with caplog.at_level("INFO", logger="tsne_atlas.image_quality"):
        outputs = run_stage(sample, tmp_path / "out", max_images=2)
    rows = read_quality(outputs["quality"])
    assert [row["label"] for row in rows] == ["unlabelled"] * 3
    assert [row["problems"] for row in rows] == [[], [], []]
    assert [row["colourfulness"] for row in rows] == [0.0, 0.0, 0.0]
    assert "grayscale: 3 of 3 images (colourfulness < 0.005), more than quality.max_share 0.5 of the sample" in (
        caplog.text
    )
    assert "blurry: 0 of 3 images (sharpness < 0.25)" in caplog.text
    assert all(Path(png).stat().st_size > 0 for png in outputs["figures"])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "image listed in the sample is missing; restore it or rerun the workflow from sampling"),
        ("garbage", "not a readable image (cannot identify image file"),
        ("truncated", "not a readable image ("),
    ],
)
def test_an_image_gone_or_broken_since_sampling_is_one_line_naming_it(tmp_path, damage, message):
    names = {"a.png": problem_image("small"), "b.png": Image.fromarray(chelsea())}
    sample = sample_of(tmp_path / "images", tmp_path, names)
    broken = tmp_path / "images" / "b.png"
    if damage == "missing":
        broken.unlink()
    elif damage == "garbage":
        broken.write_bytes(b"not an image at all")
    else:
        broken.write_bytes(broken.read_bytes()[:2000])
    with pytest.raises(AtlasError) as error:
        run_stage(sample, tmp_path / "out")
    text = str(error.value)
    assert text.startswith(f"{broken}: ") and message in text and "\n" not in text
    assert text.endswith(("rerun", "rerun the workflow from sampling"))


def test_a_finished_run_lists_every_sampled_image_and_draws_every_problem(finished_run):
    workdir, _ = finished_run
    results = workdir / "results"
    rows = read_quality(results / "quality" / "quality.csv")
    assert [row["path"] for row in rows] == read_images(results / "sample" / "images.csv")[0]
    assert len(rows) == 40
    # The demo's 28-pixel grayscale silhouettes: every image is grayscale and small, so neither is listed.
    assert all(row["colourfulness"] == 0.0 and row["size"] == 28.0 for row in rows)
    assert not any({"grayscale", "small"} & set(row["problems"]) for row in rows)
    for check in q.CHECKS:
        png = results / "quality" / f"{check.name}.png"
        assert Image.open(png).format == "PNG", png
    log = (results / "logs" / "quality.log").read_text()
    assert "grayscale: 40 of 40 images" in log and "listed for none" in log
