import NIOCore
import SluiceGRPC

/// The model an Open Inference Protocol gRPC call is for, so pools match it by `models` as they
/// match a REST body's `model`: `ModelInfer`'s `model_name`, `ModelReady`'s and
/// `ModelMetadata`'s `name`; nil for server-wide calls and anything that does not decode.
enum GRPCRouting {
    static let service = "/inference.GRPCInferenceService/"

    static func model(path: String, body: ByteBuffer) -> String? {
        guard path.hasPrefix(service) else { return nil }
        return body.withUnsafeReadableBytes { raw in
            switch path.dropFirst(service.count) {
            case "ModelInfer": GRPCMessage.decode(Inference_ModelInferRequest.self, from: raw)?.modelName
            case "ModelReady", "ModelMetadata": GRPCMessage.decode(Inference_ModelNameRequest.self, from: raw)?.name
            default: nil
            }
        }
    }
}
