// A screenshot's pixels, and the areas of one colour in it: how a test finds what a browser drew.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"

namespace faultline::test {

struct Colour {
  uint8_t red;
  uint8_t green;
  uint8_t blue;
};

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // row by row, three bytes a pixel

  Colour At(int x, int y) const;
};

absl::StatusOr<Image> ReadPng(const std::filesystem::path& path);

// A connected area (4-neighbours) of pixels of one colour: its bounding box and how many pixels it has.
struct Region {
  int left;
  int top;
  int right;  // inclusive
  int bottom;
  int pixels;

  int width() const { return right - left + 1; }
  int height() const { return bottom - top + 1; }
};

// The areas of pixels within `tolerance` of `colour` in every channel, of at least `min_pixels`, top to
// bottom, then left to right. Anti-aliased edges blend into their neighbours and fall outside the
// tolerance; a shape's solid interior is one region.
std::vector<Region> RegionsOf(const Image& image, Colour colour, int tolerance, int min_pixels);

}  // namespace faultline::test
