import ServiceLifecycle

extension Gateway {
    /// What keeps a started gateway running, in start order, for one ServiceGroup (`sluice
    /// serve` and `sluice demo` add their own after these). The group shuts them down in
    /// reverse: the data listener drains first, for up to `grace`; then the scraper, the scale
    /// ticker and the publisher stop; the admin listener closes after them, so `/readyz` says
    /// "draining" all along; the HTTP client they share goes last. Each is made once: run them
    /// in one group, once.
    /// The span exporter, when tracing, stops after the data listener, so the last requests'
    /// spans are sent.
    public func services(grace: Duration) -> [any Service] {
        [runtime.httpClient] + (runtime.tracer.map { [$0.service] } ?? []) + [
            AdminService(gateway: self),
            scalePublisher,
            scaleTicker,
            scraper,
            discovery,
            healthMonitor,
            CertificateReloader(certificates: try? certificates?.get(), logger: runtime.logger),
            GatewayService(gateway: self, grace: grace),
        ]
    }
}
