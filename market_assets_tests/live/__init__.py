# Copyright (c) James Kassemi, SC, US. All rights reserved.
