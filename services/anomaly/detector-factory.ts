/**
 * Builds the real streaming detector (`./detector/`) for the service. The model version is part of
 * the detector's configuration (it stamps every score), so a new version means a detector created
 * with that `modelVersion`, optionally restored from another version's snapshot. If a snapshot was
 * taken with incompatible settings (window sizes), the snapshot's own settings are used.
 */
import type { Logger } from '../../common/logger.ts';
import { PlatformError } from '../../common/errors.ts';
import { createDetector, DetectorConfig } from './detector/index.ts';
import type { DetectorFactory } from './detector-port.ts';

export function detectorFactory(config: DetectorConfig, logger: Logger): DetectorFactory {
  const log = logger.child({ module: 'detector' });
  return {
    defaultVersion: config.modelVersion,
    create: (modelVersion) => createDetector({ ...config, modelVersion: modelVersion ?? config.modelVersion }, { logger: log }),
    async restore(snapshot, modelVersion) {
      const detector = await createDetector({ ...config, modelVersion }, { logger: log });
      try {
        await detector.restore(snapshot as Parameters<typeof detector.restore>[0]);
        return detector;
      } catch (err) {
        detector.dispose();
        const own = DetectorConfig.safeParse((snapshot as { config?: unknown }).config);
        if (!own.success) {
          throw new PlatformError('ANOMALY_RESTORE_FAILED', `cannot restore the detector snapshot: ${(err as Error).message}`, {
            retriable: false,
            cause: err,
          });
        }
        log.warn({ err: (err as Error).message }, 'snapshot incompatible with the configured detector settings; using the settings it was taken with');
        const fallback = await createDetector({ ...own.data, modelVersion }, { logger: log });
        try {
          await fallback.restore(snapshot as Parameters<typeof fallback.restore>[0]);
        } catch (err2) {
          fallback.dispose();
          throw new PlatformError('ANOMALY_RESTORE_FAILED', `cannot restore the detector snapshot: ${(err2 as Error).message}`, {
            retriable: false,
            cause: err2,
          });
        }
        return fallback;
      }
    },
  };
}
