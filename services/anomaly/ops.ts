/**
 * Control endpoints on the service's ops server (beside /metrics and /healthz):
 *
 *   GET    /models                 live version and every checkpointed version with its metadata
 *   POST   /checkpoint             checkpoint the live model now
 *   POST   /rescore                {from, to?, modelVersion?, model?, promote?} → 202 job
 *   POST   /retrain                {from?, modelVersion?, promote? = true} → 202 job (fresh model)
 *   GET    /rescore                all jobs;  GET /rescore/<id>  one job;  DELETE /rescore/<id> cancel
 *   POST   /promote                {modelVersion} make a checkpointed version the live model
 *
 * `from`/`to` are epoch milliseconds or ISO-8601 strings.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { sendJson, type RouteHandler } from '../../common/http.ts';
import { PlatformError } from '../../common/errors.ts';
import { describeZodError } from '../../common/messages.ts';
import type { ModelMetadata } from './model-store.ts';
import type { RescoreStatus } from './rescore.ts';

const MAX_BODY = 64 * 1024;

const Instant = z.union([
  z.number().int().nonnegative(),
  z
    .string()
    .refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO-8601 date-time')
    .transform((s) => Date.parse(s)),
], { error: 'expected epoch milliseconds or an ISO-8601 date-time' });

const Version = z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/, '1-128 of A-Z a-z 0-9 _ . -');

export const RescoreBody = z.strictObject({
  from: Instant,
  to: Instant.optional(),
  modelVersion: Version.optional(),
  /** `fresh` (default), `live`, a checkpointed version, or a checkpoint folder path. */
  model: z.string().min(1).optional(),
  promote: z.boolean().default(false),
});
export type RescoreBody = z.input<typeof RescoreBody>;

export const RetrainBody = z.strictObject({
  from: Instant.optional(),
  modelVersion: Version.optional(),
  promote: z.boolean().default(true),
});
export type RetrainBody = z.input<typeof RetrainBody>;

export const PromoteBody = z.strictObject({ modelVersion: Version });

export interface OpsControl {
  models(): Promise<{ live: string; versions: ModelMetadata[] }>;
  checkpoint(): Promise<ModelMetadata>;
  rescore(body: z.output<typeof RescoreBody>): Promise<RescoreStatus>;
  retrain(body: z.output<typeof RetrainBody>): Promise<RescoreStatus>;
  jobs(): RescoreStatus[];
  job(id: string): RescoreStatus | undefined;
  cancelJob(id: string): Promise<RescoreStatus | undefined>;
  promote(modelVersion: string): Promise<{ live: string }>;
}

/** HTTP status for a PlatformError code. */
export function statusFor(err: unknown): number {
  if (!(err instanceof PlatformError)) return 500;
  if (err.code === 'ANOMALY_REQUEST_INVALID' || err.code === 'ANOMALY_MODEL_VERSION_INVALID') return 400;
  if (err.code === 'ANOMALY_MODEL_NOT_FOUND' || err.code === 'ANOMALY_JOB_NOT_FOUND') return 404;
  if (err.code === 'ANOMALY_RESCORE_CONFLICT' || err.code === 'ANOMALY_CLOSING') return 409;
  if (err.code === 'ANOMALY_RESCORE_LIMIT') return 429;
  if (err.code === 'ANOMALY_MODEL_CORRUPT' || err.code === 'ANOMALY_RESTORE_FAILED') return 422;
  return err.retriable ? 503 : 500;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new PlatformError('ANOMALY_REQUEST_INVALID', `body larger than ${MAX_BODY} bytes`, { retriable: false });
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PlatformError('ANOMALY_REQUEST_INVALID', `body is not JSON: ${(err as Error).message}`, { retriable: false });
  }
}

function parse<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new PlatformError('ANOMALY_REQUEST_INVALID', describeZodError(r.error), { retriable: false });
  return r.data;
}

export function opsRoutes(control: OpsControl): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const reply = async (fn: () => Promise<[number, unknown]>) => {
      try {
        const [status, body] = await fn();
        sendJson(res, status, body);
      } catch (err) {
        const code = err instanceof PlatformError ? err.code : 'INTERNAL';
        sendJson(res, statusFor(err), { error: code, message: (err as Error).message });
      }
      return true;
    };
    if (path === '/models' && method === 'GET') return reply(async () => [200, await control.models()]);
    if (path === '/checkpoint' && method === 'POST') return reply(async () => [200, await control.checkpoint()]);
    if (path === '/rescore' && method === 'POST') return reply(async () => [202, await control.rescore(parse(RescoreBody, await readJson(req)))]);
    if (path === '/retrain' && method === 'POST') return reply(async () => [202, await control.retrain(parse(RetrainBody, await readJson(req)))]);
    if (path === '/rescore' && method === 'GET') return reply(async () => [200, control.jobs()]);
    if (path === '/promote' && method === 'POST') return reply(async () => [200, await control.promote(parse(PromoteBody, await readJson(req)).modelVersion)]);
    const m = /^\/rescore\/([A-Za-z0-9_.-]+)$/.exec(path);
    if (m && (method === 'GET' || method === 'DELETE')) {
      return reply(async () => {
        const job = method === 'GET' ? control.job(m[1]) : await control.cancelJob(m[1]);
        if (!job) throw new PlatformError('ANOMALY_JOB_NOT_FOUND', `no rescore job ${m[1]}`, { retriable: false });
        return [200, job];
      });
    }
    return false;
  };
}
