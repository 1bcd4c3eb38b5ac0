#include "image.h"

#include <png.h>

#include <algorithm>
#include <cstdlib>

#include "faultline/api/cat.h"

namespace faultline::test {

using api::Cat;

Colour Image::At(int x, int y) const {
  const uint8_t* pixel =
      &rgb[(static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3];
  return {pixel[0], pixel[1], pixel[2]};
}

absl::StatusOr<Image> ReadPng(const std::filesystem::path& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  if (png_image_begin_read_from_file(&png, path.c_str()) == 0) {
    return absl::InvalidArgumentError(Cat(path, ": not a PNG: ", png.message));
  }
  png.format = PNG_FORMAT_RGB;  // alpha, palette and grey are converted; a screenshot is opaque anyway
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.rgb.resize(PNG_IMAGE_SIZE(png));
  if (png_image_finish_read(&png, nullptr, image.rgb.data(), 0, nullptr) == 0) {
    std::string message = png.message;
    png_image_free(&png);
    return absl::InvalidArgumentError(Cat(path, ": ", message));
  }
  return image;
}

namespace {

bool Near(Colour a, Colour b, int tolerance) {
  return std::abs(a.red - b.red) <= tolerance && std::abs(a.green - b.green) <= tolerance &&
         std::abs(a.blue - b.blue) <= tolerance;
}

}  // namespace

std::vector<Region> RegionsOf(const Image& image, Colour colour, int tolerance, int min_pixels) {
  const int width = image.width;
  std::vector<bool> seen(static_cast<size_t>(width) * static_cast<size_t>(image.height));
  auto index = [width](int x, int y) {
    return static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x);
  };
  auto matches = [&](int x, int y) {
    return x >= 0 && y >= 0 && x < width && y < image.height && !seen[index(x, y)] &&
           Near(image.At(x, y), colour, tolerance);
  };
  std::vector<Region> regions;
  std::vector<std::pair<int, int>> stack;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < width; ++x) {
      if (!matches(x, y)) continue;
      Region region{x, y, x, y, 0};
      seen[index(x, y)] = true;
      stack.assign(1, {x, y});
      while (!stack.empty()) {
        auto [px, py] = stack.back();
        stack.pop_back();
        ++region.pixels;
        region.left = std::min(region.left, px);
        region.right = std::max(region.right, px);
        region.top = std::min(region.top, py);
        region.bottom = std::max(region.bottom, py);
        for (auto [nx, ny] : {std::pair{px + 1, py}, {px - 1, py}, {px, py + 1}, {px, py - 1}}) {
          if (!matches(nx, ny)) continue;
          seen[index(nx, ny)] = true;
          stack.push_back({nx, ny});
        }
      }
      if (region.pixels >= min_pixels) regions.push_back(region);
    }
  }
  return regions;
}

}  // namespace faultline::test
