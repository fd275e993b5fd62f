export {
  type CommArray,
  type CommStats,
  type Communicator,
  type Exchanged,
  type ReduceArray,
  SingleProcessComm,
} from './comm.js';
export { type LaunchInfo, launchInfo, openCommunicator } from './launch.js';
export { loadMpiAddon, MPI_ADDON_PATH, MPI_HOWTO, MpiComm, openMpi } from './mpi.js';
