"""Pictures of training: image grids, interpolation strips and loss curves.

Images arrive as float arrays in `[-1, 1]` (what the generators produce) or uint8; grids are
returned as uint8 arrays so they can be saved, logged to TensorBoard or shown with matplotlib.
"""

import math

import numpy as np

# `plotting.to_uint8`, which the notebooks call, is the package's one converter
# (`kerasgan.utils.to_uint8`), imported here under the name they know.
from kerasgan.utils import atomic_path, to_uint8


def image_grid(images, cols=None, padding=2, pad_value=255):
    """Tile a batch of images into one image.

    Args:
        images: `[n, H, W, C]` (or `[n, H, W]`) in `[-1, 1]` or uint8.
        cols: images per row (default: the smallest square that holds them).
        padding: pixels between tiles.
        pad_value: uint8 value of the padding (white by default).

    Returns:
        uint8 array `[rows*(H+p)+p, cols*(W+p)+p, C]`.
    """
    images = np.asarray(to_uint8(images))
    if images.ndim == 3:
        images = images[..., None]
    n, height, width, channels = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full(
        (rows * (height + padding) + padding, cols * (width + padding) + padding, channels),
        pad_value,
        dtype="uint8",
    )
    for index, image in enumerate(images):
        row, col = divmod(index, cols)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def mixing_tiles(grid, row_images, col_images):
    """Lay out a style-mixing grid as tiles for `image_grid(tiles, cols=cols + 1)`.

    The first row is a blank corner followed by the column sources; every further row starts
    with its row source followed by its mixes (the layout of StyleGAN's Figure 3).

    Args:
        grid: `[rows, cols, H, W, C]` mixes (float in `[-1, 1]` or uint8).
        row_images: `[rows, H, W, C]` row sources.
        col_images: `[cols, H, W, C]` column sources.

    Returns:
        uint8 `[(rows + 1) * (cols + 1), H, W, C]`.
    """
    grid, row_images, col_images = (np.asarray(to_uint8(x)) for x in (grid, row_images, col_images))
    tiles = [np.full_like(col_images[:1], 255), col_images]
    for row, mixes in zip(row_images, grid):
        tiles += [row[None], mixes]
    return np.concatenate(tiles)


def _to_picture(image, scale=1):
    """A PIL image of a `[H, W, 1|3]` array, enlarged `scale` times with nearest-neighbour."""
    from PIL import Image

    image = np.asarray(to_uint8(image))
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    picture = Image.fromarray(image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return picture


def save_image(image, path, scale=1):
    """Save a uint8 image (`[H, W, 1|3]`) as PNG atomically, optionally enlarged `scale` times
    with nearest-neighbour so small digits stay crisp."""
    with atomic_path(path) as tmp:
        _to_picture(image, scale).save(tmp, format="PNG")
    return path


def save_gif(frames, path, duration_ms=200, scale=1):
    """Save uint8 frames as a looping GIF, atomically (the last frame is held longer)."""
    pictures = [_to_picture(frame, scale) for frame in frames]
    durations = [duration_ms] * (len(pictures) - 1) + [duration_ms * 5]
    with atomic_path(path) as tmp:
        pictures[0].save(
            tmp, format="GIF", save_all=True, append_images=pictures[1:], duration=durations,
            loop=0,
        )
    return path


def interpolate_latents(start, end, steps, spherical=True):
    """Latent vectors on the path from `start` to `end` (both `[latent_dim]`).

    Spherical interpolation (slerp) keeps the vectors at the norm a Gaussian latent typically
    has; a straight line passes through the low-norm middle, which the generator rarely saw.
    """
    start, end = np.asarray(start, "float64"), np.asarray(end, "float64")
    ts = np.linspace(0.0, 1.0, steps)[:, None]
    if not spherical:
        return ((1 - ts) * start + ts * end).astype("float32")
    cosine = np.dot(start, end) / (np.linalg.norm(start) * np.linalg.norm(end))
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))
    if omega < 1e-6:
        return ((1 - ts) * start + ts * end).astype("float32")
    return (
        (np.sin((1 - ts) * omega) * start + np.sin(ts * omega) * end) / np.sin(omega)
    ).astype("float32")


def show_images(images, cols=None, title=None, ax=None, scale=3):
    """Show a grid of images with matplotlib (in notebooks)."""
    import matplotlib.pyplot as plt

    grid = image_grid(images, cols=cols)
    if ax is None:
        height, width = grid.shape[:2]
        _, ax = plt.subplots(figsize=(scale * width / max(height, width) * 2, scale * 2 * height / max(height, width)))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray" if grid.shape[-1] == 1 else None)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def plot_history(history, keys=None, ax=None, title="Training"):
    """Plot loss and score curves from a `keras.callbacks.History` (or its `.history` dict).

    Args:
        history: a History object or a dict of lists.
        keys: which entries to plot (default: all).
        ax: a matplotlib axis (a new figure when omitted).
        title: the axis title.
    """
    import matplotlib.pyplot as plt

    values = getattr(history, "history", history)
    keys = keys or sorted(values)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    for key in keys:
        ax.plot(range(1, len(values[key]) + 1), values[key], label=key)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_point_game(gan, real_points, ax=None, n=1000, extent=3.0, title=None):
    """The 2-D game at a glance: D's belief as a background, real points, generated points.

    Args:
        gan: a `kerasgan.models.toy.ToyGAN`.
        real_points: `[m, 2]` samples of the data.
        ax: a matplotlib axis (a new one when omitted).
        n: generated points to draw.
        extent: half-width of the square shown.
        title: the axis title.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    xs, ys, probabilities = gan.discriminator_map(extent)
    shading = ax.contourf(xs, ys, probabilities, levels=20, cmap="RdBu", vmin=0, vmax=1, alpha=0.6)
    ax.scatter(real_points[:, 0], real_points[:, 1], s=2, c="black", label="real")
    fake = gan.generate(n, seed=0)
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="orange", label="generated")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4, fontsize=8)
    if title:
        ax.set_title(title)
    return shading
