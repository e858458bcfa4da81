#!/bin/sh
echo post
