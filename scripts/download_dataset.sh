#!/usr/bin/env bash
# Download a data set of the reference CycleGAN into data/<name>/{trainA,trainB,testA,testB}.
# Needs internet. Usage: bash scripts/download_dataset.sh horse2zebra [DATA_DIR]
set -euo pipefail

NAMES="apple2orange summer2winter_yosemite horse2zebra monet2photo cezanne2photo ukiyoe2photo vangogh2photo maps cityscapes facades iphone2dslr_flower ae_photos"
name="${1:-}"
data_dir="${2:-${CYCLESTYLE_DATA_DIR:-data}}"
if [[ -z "$name" || " $NAMES " != *" $name "* ]]; then
    echo "usage: $0 NAME [DATA_DIR]   with NAME one of: $NAMES" >&2
    exit 2
fi
url="https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/${name}.zip"
mkdir -p "$data_dir"
tmp="$(mktemp -d "${data_dir}/.download-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "Downloading $url"
curl -fL --retry 3 -o "$tmp/$name.zip" "$url"
unzip -q "$tmp/$name.zip" -d "$tmp"
rm -rf "${data_dir:?}/$name"
mv "$tmp/$name" "$data_dir/$name"
echo "Ready: $data_dir/$name/{trainA,trainB,testA,testB}.  Train with: cyclestyle train data=$name"
