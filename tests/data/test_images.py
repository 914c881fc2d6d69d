"""Image folders: one subfolder per class, channels first, one error naming the file for each bad image."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parents[1]))
from file_helpers import write_png  # noqa: E402

from trainwell.data.images import image_shape, read_image_folder, read_unlabelled  # noqa: E402
from trainwell.errors import DataError  # noqa: E402


def test_class_names_are_the_sorted_folder_names_and_grayscale_images_are_h_by_w(tmp_path):
    write_png(tmp_path / "b" / "1.png", np.full((4, 5), 200))
    write_png(tmp_path / "a" / "1.png", np.full((4, 5), 10))
    write_png(tmp_path / "a" / "2.png", np.full((4, 5), 20))
    images = read_image_folder(tmp_path)
    assert images.class_names == ("a", "b") and images.y.tolist() == [0, 0, 1]
    assert images.x.shape == (3, 4, 5) and images.x.dtype == np.uint8 and images.x[2, 0, 0] == 200
    assert images.files == ["a/1.png", "a/2.png", "b/1.png"]
    assert image_shape(tmp_path) == (4, 5)


def test_color_images_are_channels_first_and_image_size_and_color_mode_convert(tmp_path):
    rgb = np.zeros((6, 4, 3), dtype=np.uint8)
    rgb[..., 2] = 255
    Image.fromarray(rgb).save(tmp_path.joinpath("c").mkdir() or tmp_path / "c" / "1.png")
    write_png(tmp_path / "c" / "2.png", np.zeros((3, 3)))  # grayscale, another size
    with pytest.raises(DataError, match="2.png: image of 3x3 pixels, mode 'L'; expected 6x4, mode 'RGB'"):
        read_image_folder(tmp_path)
    images = read_image_folder(tmp_path, image_size=[8, 8], color_mode="rgb")
    assert images.x.shape == (2, 3, 8, 8) and images.x[0, 2].min() == 255 and images.x[0, 0].max() == 0
    assert read_image_folder(tmp_path, image_size=[8, 8], color_mode="grayscale").x.shape == (2, 8, 8)


def test_a_model_s_shape_is_required_of_new_images(tmp_path):
    write_png(tmp_path / "1.png", np.zeros((5, 5)))
    assert read_unlabelled(tmp_path, shape=(5, 5)).x.shape == (1, 5, 5)
    with pytest.raises(DataError, match="1.png: image of 5x5 pixels, mode 'L'; the model takes 4x4, mode 'L'"):
        read_unlabelled(tmp_path, shape=(4, 4))
    assert read_unlabelled(tmp_path, shape=(4, 4), image_size=[4, 4]).x.shape == (1, 4, 4)


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "has no class folders"),
    (lambda root: (root / "cat").mkdir(parents=True), "cat: the class folder 'cat' holds no images"),
    (lambda root: write_png(root / "cat" / "1.png", np.zeros((2, 2))) and (root / "cat" / "x.txt").write_text("hi"),
     "x.txt: is not an image file"),
    (lambda root: None, "no such folder"),
])
def test_bad_folders_are_one_error_naming_the_folder_or_file(tmp_path, make, message):
    root = tmp_path / "images"
    make(root)
    with pytest.raises(DataError, match=message):
        read_image_folder(root)


def test_a_held_out_folder_with_an_unknown_class_is_named(tmp_path):
    write_png(tmp_path / "dog" / "1.png", np.zeros((2, 2)))
    with pytest.raises(DataError, match="class 'dog' was not among the training classes \\(cat\\)"):
        read_image_folder(tmp_path, class_names=["cat"])
