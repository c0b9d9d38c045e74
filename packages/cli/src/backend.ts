import { selectBackend, type BackendChoice, type BackendSelection } from '@wrn/backend/node';
import { errorMessage, RunFailedError } from './errors.js';

/**
 * Selects the backend a command's `--backend` flag names (already checked against BACKEND_CHOICES by the flag's
 * parser) and sets it. A backend that does not load is a failed run, not bad input (exit 1): the flag was valid, the
 * machine lacks what it needs; the message names the flag and says why.
 */
export async function chooseBackend(choice: string, flag = '--backend'): Promise<BackendSelection> {
  try {
    return await selectBackend(choice as BackendChoice);
  } catch (error) {
    throw new RunFailedError(`${flag} ${choice}: ${errorMessage(error)}`, { cause: error });
  }
}
