#!/usr/bin/env bash
# Fetches the datasets prunelab reads.
#   scripts/get_data.sh cifar10        → data/cifar-10-batches-bin/   (needs internet)
#   scripts/get_data.sh cifar100       → data/cifar-100-binary/       (needs internet)
#   scripts/get_data.sh fashion-mnist  → /usr/share/datasets/fashion-mnist (Debian package)
# The CIFAR archives come from their canonical site and are checked against their published MD5.
set -euo pipefail
cd "$(dirname "$0")/.."

fetch_cifar() { # url md5 folder
  local url=$1 md5=$2 folder=$3 archive
  archive=data/$(basename "$url")
  mkdir -p data
  if [ -d "data/$folder" ]; then echo "data/$folder already exists"; return; fi
  echo "downloading $url"
  curl -fL --retry 3 -o "$archive.part" "$url"
  echo "$md5  $archive.part" | md5sum -c -
  mv "$archive.part" "$archive"
  tar -xzf "$archive" -C data
  rm "$archive"
  echo "CIFAR data in data/$folder"
}

case "${1:-}" in
  cifar10) fetch_cifar https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz c32a1d4ab5d03f1284b67883e8d87530 cifar-10-batches-bin ;;
  cifar100) fetch_cifar https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz 03b5dce01913d631647c71ecec9e9cb8 cifar-100-binary ;;
  fashion-mnist)
    if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
      echo "Fashion-MNIST already installed in /usr/share/datasets/fashion-mnist"
    elif command -v apt-get >/dev/null; then
      sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd=sudo
      $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq dataset-fashion-mnist
    else
      echo "No apt-get here: download the four *-ubyte.gz files of Fashion-MNIST into a folder" >&2
      echo "and set [data] dir to it." >&2
      exit 1
    fi ;;
  *) echo "usage: $0 cifar10|cifar100|fashion-mnist" >&2; exit 2 ;;
esac
