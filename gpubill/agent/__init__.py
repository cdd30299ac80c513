"""The metering agent: NVML sampling, job attribution, durable spool, delivery."""
