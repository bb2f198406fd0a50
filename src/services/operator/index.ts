// The operator service's public interface: crypto module lifecycle (init, unseal, seal, rotation).
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { OperatorService } from './service.ts';
import { operatorOperations } from './routes.ts';

export { OperatorService, type SealBackend, type SealStatus, type InitResult } from './service.ts';
export { DomainKeyRotation, type DomainKeyRotationProgress } from './domain-key-rotation.ts';
export { createOperatorHttpHandler, OPERATOR_TARGET_PREFIX } from './routes.ts';

export function operatorApiOperations(service: OperatorService): AwsJsonOperation[] {
  return operatorOperations(service) as AwsJsonOperation[];
}
