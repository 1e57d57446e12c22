"""Build the embedded style-transfer images: content photos and procedural style images.

    python scripts/build_style_data.py            # writes data/photos/ and data/styles/

Content photos come from sample images that ship inside scikit-learn and scikit-image (their
licences are listed in data/README.md); each is resized so its longer side is at most 512 pixels
and saved as JPEG quality 90. Style images are painted here from a fixed seed with NumPy and
Pillow only, so anyone can rebuild the same files and no artwork licence is involved. Running
the script twice gives the same bytes.

Needs scikit-learn and scikit-image (requirements-dev.txt); the package itself does not.
"""

import argparse
import colorsys
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MAX_SIDE = 512
STYLE_SIZE = 384
JPEG_QUALITY = 90

# === Content photos ===


def content_photos():
    """(file name, RGB uint8 array) for each photo shipped by scikit-learn / scikit-image."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    return [
        ("china.jpg", load_sample_image("china.jpg")),
        ("flower.jpg", load_sample_image("flower.jpg")),
        ("astronaut.jpg", skimage.data.astronaut()),
        ("coffee.jpg", skimage.data.coffee()),
        ("chelsea.jpg", skimage.data.chelsea()),
        ("rocket.jpg", skimage.data.rocket()),
    ]


def shrink(image, max_side=MAX_SIDE):
    """Resize a PIL image so its longer side is at most `max_side` (Lanczos, aspect kept)."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


# === Procedural style images ===
#
# Each painter takes a NumPy Generator and returns a square RGB PIL image. They imitate the
# visual statistics that make a style recognisable (palette, stroke direction, tile edges,
# repetition) rather than any particular artwork.


def kandinsky(rng, size=STYLE_SIZE):
    """Bold circles, rings, triangles and black lines on a warm paper ground (after Kandinsky)."""
    scale = 2  # draw large, then downsample: smooth edges without an antialiasing renderer
    side = size * scale
    image = Image.new("RGB", (side, side), (236, 226, 200))
    draw = ImageDraw.Draw(image)
    palette = [
        (200, 40, 40),
        (30, 60, 160),
        (240, 190, 30),
        (20, 20, 20),
        (40, 140, 90),
        (230, 110, 40),
        (120, 50, 140),
        (90, 170, 210),
    ]

    def colour():
        return palette[rng.integers(len(palette))]

    # Large translucent-looking background planes.
    for _ in range(6):
        x, y = rng.uniform(0, side, 2)
        w, h = rng.uniform(0.2, 0.6, 2) * side
        draw.rectangle(
            [x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=_mix(colour(), (236, 226, 200), 0.45)
        )
    for _ in range(9):
        x, y = rng.uniform(0.1, 0.9, 2) * side
        radius = rng.uniform(0.04, 0.16) * side
        for ring in range(rng.integers(1, 5)):
            r = radius * (1 - ring * 0.22)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour())
    for _ in range(6):
        centre = rng.uniform(0.1, 0.9, 2) * side
        points = centre + rng.uniform(-0.15, 0.15, (3, 2)) * side
        draw.polygon([tuple(p) for p in points], fill=colour())
    for _ in range(10):
        start = rng.uniform(0, side, 2)
        end = start + rng.uniform(-0.5, 0.5, 2) * side
        draw.line([tuple(start), tuple(end)], fill=(15, 15, 15), width=int(rng.integers(3, 9)))
    for _ in range(5):  # small checkerboards
        x0, y0 = rng.uniform(0, side * 0.85, 2)
        cell = rng.integers(10, 22)
        a, b = colour(), colour()
        for i in range(5):
            for j in range(5):
                box = [x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell]
                draw.rectangle(box, fill=a if (i + j) % 2 else b)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def brushstrokes(rng, size=STYLE_SIZE):
    """Thick strokes following a swirling flow field in blues and yellows (a painterly sky)."""
    scale = 2
    side = size * scale
    angle = _smooth_field(rng, side, octaves=((3, 1.0), (6, 0.5), (11, 0.25))) * 2.5 * np.pi
    tone = _smooth_field(rng, side, octaves=((2, 1.0), (5, 0.4)))
    palette = np.array(
        [
            (16, 32, 84),
            (30, 70, 150),
            (70, 120, 190),
            (150, 190, 220),
            (235, 210, 90),
            (245, 170, 40),
            (250, 240, 190),
        ],
        dtype=float,
    )
    image = Image.new("RGB", (side, side), (25, 45, 100))
    draw = ImageDraw.Draw(image)
    for _ in range(9000):
        x, y = rng.uniform(0, side, 2)
        t = np.clip(tone[int(y), int(x)] + rng.normal(0, 0.08), 0, 0.999)
        base = palette[int(t * len(palette))]
        fill = tuple(int(v) for v in np.clip(base + rng.normal(0, 12, 3), 0, 255))
        points = [(x, y)]
        for _ in range(rng.integers(4, 9)):
            a = angle[int(y) % side, int(x) % side]
            x, y = x + 5 * np.cos(a), y + 5 * np.sin(a)
            points.append((x, y))
        draw.line(points, fill=fill, width=int(rng.integers(5, 11)), joint="curve")
    return image.resize((size, size), Image.Resampling.LANCZOS)


def mosaic(rng, size=STYLE_SIZE, tiles=420):
    """A Voronoi tiling of warm, jittered colours with dark grout (a Byzantine mosaic)."""
    centres = rng.uniform(0, size, (tiles, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    # Distances to every centre, chunked to keep memory small; keep nearest and second nearest.
    nearest = np.empty(len(pixels), dtype=int)
    gap = np.empty(len(pixels))
    for start in range(0, len(pixels), 16384):
        chunk = pixels[start : start + 16384]
        d = np.sqrt(((chunk[:, None, :] - centres[None]) ** 2).sum(-1))
        order = np.argpartition(d, 1, axis=1)[:, :2]
        d1 = np.take_along_axis(d, order[:, :1], 1)[:, 0]
        d2 = np.take_along_axis(d, order[:, 1:2], 1)[:, 0]
        swap = d1 > d2
        nearest[start : start + 16384] = np.where(swap, order[:, 1], order[:, 0])
        gap[start : start + 16384] = np.abs(d2 - d1)
    palette = np.array(
        [
            (180, 40, 30),
            (210, 150, 40),
            (230, 200, 120),
            (40, 90, 140),
            (30, 120, 110),
            (120, 60, 30),
            (240, 230, 210),
        ],
        dtype=float,
    )
    colours = palette[rng.integers(len(palette), size=tiles)] + rng.normal(0, 14, (tiles, 3))
    image = colours[nearest].reshape(size, size, 3)
    image[(gap < 2.2).reshape(size, size)] = (35, 30, 28)
    shade = 1 + 0.08 * rng.standard_normal((size, size, 1))  # glazed, uneven tiles
    return Image.fromarray(np.clip(image * shade, 0, 255).astype(np.uint8))


def waves(rng, size=STYLE_SIZE):
    """Curling bands of blue, white and ochre with dark outlines (marbled paper, a stylised sea)."""
    ys, xs = np.mgrid[0:size, 0:size] / size
    warp = _smooth_field(rng, size, octaves=((3, 1.0), (7, 0.35)))
    phase = 14 * ys + 2.5 * np.sin(2 * np.pi * (2 * xs + warp)) + 4 * warp
    bands = phase % 1.0
    palette = np.array(
        [(20, 40, 90), (40, 90, 150), (120, 170, 200), (245, 240, 225), (200, 160, 90)], dtype=float
    )
    index = np.minimum((bands * len(palette)).astype(int), len(palette) - 1)
    image = palette[index]
    # Thin dark outlines where a band changes colour: the carved edges of a woodblock.
    edges = np.abs(np.diff(index, axis=0, prepend=index[:1])) + np.abs(
        np.diff(index, axis=1, prepend=index[:, :1])
    )
    image[edges > 0] = (15, 25, 50)
    grain = rng.normal(0, 6, (size, size, 1))
    result = Image.fromarray(np.clip(image + grain, 0, 255).astype(np.uint8))
    return result.filter(ImageFilter.SMOOTH)


def pointillism(rng, size=STYLE_SIZE):
    """Dense dots of pure colour: sky, trees and a sunlit bank, mixed by the eye (after Seurat)."""
    scale = 2
    side = size * scale
    wobble = _smooth_field(rng, side, octaves=((2, 1.0), (5, 0.5)))
    image = Image.new("RGB", (side, side), (245, 240, 225))
    draw = ImageDraw.Draw(image)
    # Hue by height: sky blue at the top, greens in the middle, ochre and orange at the bottom.
    for _ in range(26000):
        x, y = rng.uniform(0, side, 2)
        height = y / side + 0.25 * (wobble[int(y), int(x)] - 0.5)
        hue = np.interp(
            height, [0.0, 0.35, 0.45, 0.7, 0.8, 1.0], [0.58, 0.55, 0.3, 0.25, 0.1, 0.07]
        )
        hue = (hue + rng.normal(0, 0.03)) % 1.0
        if rng.random() < 0.12:  # complementary accents
            hue = (hue + 0.5) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 0.85), rng.uniform(0.65, 1.0))
        radius = rng.uniform(2.5, 5.0)
        draw.ellipse(
            [x - radius, y - radius, x + radius, y + radius],
            fill=(int(r * 255), int(g * 255), int(b * 255)),
        )
    return image.resize((size, size), Image.Resampling.LANCZOS)


STYLES = {
    "kandinsky.jpg": kandinsky,
    "brushstrokes.jpg": brushstrokes,
    "mosaic.jpg": mosaic,
    "waves.jpg": waves,
    "pointillism.jpg": pointillism,
}


def _smooth_field(rng, size, octaves):
    """A smooth random field in [0, 1): sums of random-phase sinusoids at a few frequencies."""
    ys, xs = np.mgrid[0:size, 0:size] / size
    field = np.zeros((size, size))
    for frequency, amplitude in octaves:
        for _ in range(3):
            direction = rng.normal(size=2)
            direction /= np.linalg.norm(direction)
            phase = rng.uniform(0, 2 * np.pi)
            field += amplitude * np.sin(
                2 * np.pi * frequency * (direction[0] * xs + direction[1] * ys) + phase
            )
    field -= field.min()
    return field / (field.max() + 1e-9) * 0.999


def _mix(a, b, t):
    return tuple(int(round(x * t + y * (1 - t))) for x, y in zip(a, b))


# === Writing ===


def save_jpeg(image, path):
    """Write atomically (temporary file, then rename): no half-written file on failure."""
    tmp = f"{path}.tmp"
    image.save(tmp, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    parser.add_argument(
        "--out", default=os.path.normpath(root), help="data folder (default: data/)"
    )
    parser.add_argument("--seed", type=int, default=2017, help="seed of the procedural styles")
    args = parser.parse_args(argv)

    photos_dir = os.path.join(args.out, "photos")
    styles_dir = os.path.join(args.out, "styles")
    os.makedirs(photos_dir, exist_ok=True)
    os.makedirs(styles_dir, exist_ok=True)
    for name, array in content_photos():
        save_jpeg(shrink(Image.fromarray(array).convert("RGB")), os.path.join(photos_dir, name))
    for index, (name, painter) in enumerate(STYLES.items()):
        rng = np.random.default_rng([args.seed, index])  # one stream per style: add styles freely
        save_jpeg(painter(rng), os.path.join(styles_dir, name))
    for folder in (photos_dir, styles_dir):
        for name in sorted(os.listdir(folder)):
            print(
                f"{os.path.join(folder, name)}  {os.path.getsize(os.path.join(folder, name)) // 1024} KB"
            )


if __name__ == "__main__":
    main()
