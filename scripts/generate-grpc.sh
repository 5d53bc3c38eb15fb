#!/usr/bin/env bash
# Regenerates Sources/SluiceGRPC/grpc_predict_v2.pb.swift from grpc_predict_v2.proto. The
# generated file is committed, so neither the tests nor CI need protoc or the plugin (whose
# first build takes minutes). Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift
# built from swift-protobuf at the version Package.swift names:
#   git clone https://github.com/apple/swift-protobuf /tmp/swift-protobuf
#   git -C /tmp/swift-protobuf checkout 1.39.0
#   swift build -c release --product protoc-gen-swift --package-path /tmp/swift-protobuf
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift scripts/generate-grpc.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
    --proto_path=Sources/SluiceGRPC --swift_out=Sources/SluiceGRPC Sources/SluiceGRPC/grpc_predict_v2.proto
