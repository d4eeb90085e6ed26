#!/usr/bin/env bash
# test_cli.sh - the nncl tool end to end. Usage: test_cli.sh NNCL REPO WORKDIR MODE
#   smoke:  trains the default CNN on a 5,000-image subset of Fashion-MNIST
#           for three epochs: the loss must fall and the test accuracy (on 2,000
#           test images) must reach 75%.
#   resume: the same seed gives bitwise-identical weights run to run, and a
#           run stopped at step 25 and resumed from its checkpoint ends with
#           bitwise the same weights as one never interrupted (shuffling and
#           dropout included, across an epoch boundary); also when both start
#           from the same --init weights.
#   errors: bad input gets exit code 1 and a message, never a crash.
set -u -o pipefail
nncl=$1 repo=$2 work=$3 mode=$4
data=/usr/share/datasets/fashion-mnist
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

if [ ! -f "$data/train-images-idx3-ubyte.gz" ]; then
  echo "SKIPPED: $data is missing (install dataset-fashion-mnist)"
  [ "${NNCL_REQUIRE_DATA:-}" = 1 ] && exit 1
  exit 77
fi
devices=$("$nncl" devices) || fail "nncl devices failed"
if ! grep -q '^[0-9][0-9]*:[0-9][0-9]* ' <<< "$devices"; then # every mode trains on the default OpenCL device
  echo "SKIPPED: no OpenCL device (nncl devices lists none)"
  [ "${NNCL_REQUIRE_OPENCL:-}" = 1 ] && exit 1
  exit 77
fi

case $mode in
smoke)
  "$nncl" train --spec "$repo/examples/fashion_cnn.spec" --epochs 3 --limit 5000 --test-limit 2000 \
    --step-log steps.txt --metrics metrics.csv | tee train.log || fail "nncl train failed"
  first=$(head -n 10 steps.txt | awk '{s += $2} END {print s / NR}')
  last=$(tail -n 10 steps.txt | awk '{s += $2} END {print s / NR}')
  acc=$(tail -n 1 metrics.csv | cut -d, -f4)
  echo "mean loss of the first 10 steps $first, of the last 10 $last; test accuracy $acc"
  awk -v a="$first" -v b="$last" 'BEGIN {exit !(b < 0.6 * a)}' || fail "the loss did not fall"
  awk -v a="$acc" 'BEGIN {exit !(a >= 0.75)}' || fail "test accuracy $acc is below 0.75"
  echo "PASS" ;;
resume)
  common=(train --spec "$repo/tests/data/resume_mlp.spec" --epochs 2 --limit 2000 --test-limit 500 --batch 64 --seed 5)
  "$nncl" "${common[@]}" --max-steps 60 --save a.safetensors > a.log || fail "run a"
  "$nncl" "${common[@]}" --max-steps 60 --save b.safetensors > b.log || fail "run b"
  cmp a.safetensors b.safetensors || fail "two runs with one seed differ"
  "$nncl" "${common[@]}" --max-steps 25 --checkpoint state.safetensors > c1.log || fail "run c, first part"
  "$nncl" "${common[@]}" --resume state.safetensors --max-steps 60 --save c.safetensors > c2.log || fail "run c, resumed"
  cmp a.safetensors c.safetensors || fail "the resumed run differs from the uninterrupted one"
  "$nncl" "${common[@]}" --seed 6 --max-steps 60 --save d.safetensors > d.log || fail "run d"
  cmp -s a.safetensors d.safetensors && fail "another seed gave the same weights"
  # From initial weights: the seed still keys the dropout masks, as the resumed run expects.
  "$nncl" "${common[@]}" --init d.safetensors --max-steps 60 --save e.safetensors > e.log || fail "run e"
  "$nncl" "${common[@]}" --init d.safetensors --max-steps 25 --checkpoint state2.safetensors > f1.log || fail "run f, first part"
  "$nncl" "${common[@]}" --init d.safetensors --resume state2.safetensors --max-steps 60 --save f.safetensors > f2.log \
    || fail "run f, resumed"
  cmp e.safetensors f.safetensors || fail "from --init weights, the resumed run differs from the uninterrupted one"
  echo "PASS: identical run to run, and after a resume at step 25 of 60 (also from --init weights)" ;;
errors)
  spec=$repo/examples/fashion_mlp.spec
  "$nncl" train --spec "$spec" --epochs 1 --limit 256 --test-limit 64 --save good.safetensors --checkpoint good.state > /dev/null \
    || fail "the good run failed"
  printf 'input 1 28 28\nlinear 10 kernel=3\n' > bad.spec
  head -c 1000 good.safetensors > truncated.safetensors
  head -c "$(($(stat -c %s good.state) - 1))" good.state > truncated.state
  cp good.safetensors corrupt.safetensors && printf '{{{{' | dd of=corrupt.safetensors bs=1 seek=20 conv=notrunc 2> /dev/null
  printf 'not an idx file' > junk.idx
  expect() { # expect "what" "message fragment" command...
    local what=$1 want=$2; shift 2
    "$@" > out.txt 2> err.txt; local rc=$?
    [ $rc -eq 1 ] || fail "$what: exit code $rc (expected 1): $(cat err.txt)"
    grep -q -- "$want" err.txt || fail "$what: message lacks '$want': $(cat err.txt)"
    echo "ok: $what -> $(head -c 200 err.txt)"
  }
  expect "malformed spec" "bad.spec:2: linear: unknown option 'kernel'" "$nncl" train --spec bad.spec --epochs 1
  expect "missing spec" "cannot open" "$nncl" train --spec nonexistent.spec
  expect "a folder as spec" "cannot read" "$nncl" train --spec "$repo/examples"
  # Outputs that cannot be written stop the run before it trains, not after.
  expect "--save under a file" "--save good.state/w.st cannot be written" "$nncl" train --spec "$spec" \
    --save good.state/w.st
  expect "--profile to a folder" "--profile . cannot be written" "$nncl" train --spec "$spec" --profile .
  expect "unknown option" "unknown option --frobnicate" "$nncl" train --spec "$spec" --frobnicate 1
  expect "unknown option, last" "unknown option --frobnicate" "$nncl" train --spec "$spec" --frobnicate
  expect "option without its value" "option --epochs needs a value" "$nncl" train --spec "$spec" --epochs
  expect "a negative device index" "--device takes platform:device" "$nncl" train --spec "$spec" --device 0:-5
  expect "a device with junk" "--device takes platform:device" "$nncl" train --spec "$spec" --device 0:1x
  expect "check on a device with junk" "--device takes platform:device" "$nncl" check --device 0:0x
  expect "check on device -1:-1" "--device takes platform:device" "$nncl" check --device -1:-1
  expect "a check too long to run" "M\*N\*K up to 2^33" "$nncl" check --size 4096,2048,2048
  expect "a normalisation with junk" "--normalize takes MEAN,STD" "$nncl" train --spec "$spec" --normalize 0.5,0.2x
  expect "contradicting options" "contradict" "$nncl" train --spec "$spec" --normalize 0.5,0.2 --no-normalize
  expect "devices with an argument" "takes no arguments" "$nncl" devices --bogus
  expect "data file of the wrong kind" "junk.idx" "$nncl" train --spec "$spec" --train-x junk.idx --train-y junk.idx
  expect "images as labels" "labels must be" "$nncl" train --spec "$spec" --epochs 1 \
    --train-x "$data/t10k-images-idx3-ubyte.gz" --train-y "$data/t10k-images-idx3-ubyte.gz"
  expect "truncated checkpoint" "truncated.safetensors" "$nncl" eval --spec "$spec" --weights truncated.safetensors --test-limit 64
  expect "corrupted header" "corrupt.safetensors" "$nncl" eval --spec "$spec" --weights corrupt.safetensors --test-limit 64
  expect "weights of another network" "0.weight" "$nncl" eval --spec "$repo/examples/fashion_cnn.spec" --weights good.safetensors --test-limit 64
  expect "weights as a training state" "not an nncl training state" "$nncl" train --spec "$spec" --resume good.safetensors
  expect "truncated training state" "truncated.state" "$nncl" train --spec "$spec" --resume truncated.state
  expect "a finished run resumed" "nothing to train" "$nncl" train --spec "$spec" --epochs 1 --limit 256 \
    --test-limit 64 --resume good.state
  expect "missing data folder" "/nonexistent" "$nncl" train --spec "$spec" --data /nonexistent
  expect "unknown device" "does not exist" "$nncl" train --spec "$spec" --device 7:7
  expect "images without labels" "--train-x and --train-y go together" "$nncl" train --spec "$spec" --train-x junk.idx
  expect "an infinite momentum" "momentum = inf must be finite" "$nncl" train --spec "$spec" --momentum inf --limit 64
  expect "matrices too large to check" "matrices up to 2^26" "$nncl" check --size 4294967296,4294967296,4294967296
  # The optimizer's defaults are what the other options change, in any order.
  "$nncl" train --spec "$spec" --schedule cosine --lr 0.05 --optimizer adam --max-steps 1 --limit 64 --test-limit 64 \
    > order.txt || fail "options before --optimizer"
  grep -q "Adam lr 0.05 cosine" order.txt || fail "options before --optimizer were lost: $(grep model: order.txt)"
  "$nncl" eval --spec "$spec" --weights good.safetensors --test-limit 64 > /dev/null || fail "eval of good weights"
  "$nncl" resume 2> /dev/null; [ $? -eq 1 ] || fail "unknown command"
  echo "PASS" ;;
*) fail "unknown mode $mode" ;;
esac
