// Entry of the interop bundle: both WHIP/WHEP browser clients on window.
import { WHIPClient as MedoozeWHIP } from "whip-whep/whip.js";
import { WHEPClient as MedoozeWHEP } from "whip-whep/whep.js";
import { WHIPClient as EyevinnWHIP } from "@eyevinn/whip-web-client";
window.interop = { MedoozeWHIP, MedoozeWHEP, EyevinnWHIP };
