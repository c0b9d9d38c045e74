import { packageBuild } from '../../tsup.shared';

// shims: the CommonJS build gets import.meta.url (webgpu-dawn resolves Dawn's package from its own location).
export default packageBuild({ shims: true });
